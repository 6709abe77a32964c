import * as tf from '@tensorflow/tfjs-core';
import { cloneParams, createRng, disposeParams, type Params, pickParams } from '@transferlab/core';
import { batches, type Dataset, subset, type TaskPair, toTensors } from '@transferlab/datasets';
import { accuracy, crossEntropy } from '@transferlab/evaluation';
import {
  type AnyTransferMethod,
  type Batch,
  checkSpecificationVersion,
  classifierLogits,
  classifierStep,
  createBatch,
  disposeBatch,
  disposeClassifier,
  type Engine,
  initClassifier,
  type LoopConfig,
  type OptimConfig,
} from '@transferlab/methods';
import type { Backbone } from '@transferlab/models';

export interface ProgressEvent {
  phase: 'pretrain' | 'train';
  epoch: number;
  epochs: number;
}

/**
 * Input values per prediction chunk. Activations are a multiple of the input
 * (MobileNetV2's first layers hold ~10× a 224×224×3 image), and the wasm heap
 * is at most 4 GB: 2^22 values keeps a 224×224 chunk at 27 images, while small
 * inputs (28×28) stay at the 1000-example cap.
 */
const PREDICT_CHUNK_VALUES = 2 ** 22;

export function predictChunkSize(exampleShape: readonly number[]): number {
  const size = exampleShape.reduce((a, b) => a * b, 1);
  return Math.max(1, Math.min(1000, Math.floor(PREDICT_CHUNK_VALUES / size)));
}

/** Logits for a whole dataset, in chunks so memory stays bounded. */
export function predictDataset(
  predict: (x: tf.Tensor) => tf.Tensor,
  ds: Dataset,
  chunk = predictChunkSize(ds.shape),
): tf.Tensor2D {
  const parts: tf.Tensor[] = [];
  const n = ds.y.length;
  for (let start = 0; start < n; start += chunk) {
    const idx = Int32Array.from({ length: Math.min(chunk, n - start) }, (_, i) => start + i);
    parts.push(
      tf.tidy(() => {
        const { x } = toTensors(ds, idx);
        return predict(x);
      }),
    );
  }
  const out = tf.concat(parts, 0) as tf.Tensor2D;
  for (const p of parts) p.dispose();
  return out;
}

export function evaluateOn(
  predict: (x: tf.Tensor) => tf.Tensor,
  ds: Dataset,
): { acc: number; loss: number } {
  const logits = predictDataset(predict, ds);
  try {
    return { acc: accuracy(logits, ds.y), loss: crossEntropy(logits, ds.y) };
  } finally {
    logits.dispose();
  }
}

/**
 * The examples at `indices` as a method's batch: their rows gathered into
 * fresh typed arrays (as `toTensors` gathers them into tensors); tensors
 * are made only if the method reads `x` / `y`. Free it with `disposeBatch`.
 */
export function datasetBatch(ds: Dataset, indices: ArrayLike<number>): Batch {
  const rows = subset(ds, indices);
  return createBatch(rows.x, rows.y, rows.shape);
}

export interface PretrainConfig extends OptimConfig {
  /** Pre-train on at most this many source examples (a seeded random subset). */
  maxExamples: number;
}

export const defaultPretrainConfig: PretrainConfig = {
  epochs: 3,
  batchSize: 64,
  optimizer: 'adam',
  lr: 1e-3,
  momentum: 0.9,
  weightDecay: 0,
  schedule: 'constant',
  maxExamples: 10_000,
};

export interface PretrainedSource {
  /** Backbone weights. */
  params: Params;
  /** The source head (`source_head.weight`, `source_head.bias`): source-class logits, which LEEP needs. */
  sourceHead: Params;
  sourceTrainAcc: number;
}

/**
 * Supervised pre-training on the source task: backbone + a source head,
 * cross-entropy, the same step function as the `scratch` method. Returns the
 * backbone's weights, the source head and the source training accuracy.
 */
export async function pretrainSource(args: {
  backbone: Backbone;
  source: Dataset;
  seed: number;
  config?: PretrainConfig;
  /** The engine for the pre-training steps. Default onnxruntime when the backbone compiles, else tfjs. */
  engine?: Engine;
  onEpoch?: (e: ProgressEvent) => void;
}): Promise<PretrainedSource> {
  const config = args.config ?? defaultPretrainConfig;
  const rng = createRng(args.seed).derive('pretrain');
  const n = Math.min(args.source.y.length, config.maxExamples);
  const order = rng.derive('subsample').permutation(args.source.y.length).subarray(0, n);
  const source = n < args.source.y.length ? subset(args.source, order) : args.source;
  const stepsPerEpoch = Math.ceil(n / config.batchSize);
  const state = await initClassifier({
    backbone: args.backbone,
    backboneParams: args.backbone.init(rng.derive('backbone')),
    numClasses: source.numClasses,
    config,
    backboneLrMultiplier: 1,
    rng,
    totalSteps: config.epochs * stepsPerEpoch,
    headPrefix: 'source_head',
    engine: args.engine ?? (args.backbone.emitGraph ? 'onnxruntime' : 'tfjs'),
  });
  try {
    let step = 0;
    const batchRng = rng.derive('batches');
    for (let epoch = 0; epoch < config.epochs; epoch++) {
      for (const idx of batches(source, config.batchSize, batchRng)) {
        const batch = datasetBatch(source, idx);
        try {
          await classifierStep(state, batch, step++);
        } finally {
          disposeBatch(batch);
        }
      }
      args.onEpoch?.({ phase: 'pretrain', epoch: epoch + 1, epochs: config.epochs });
    }
    const evalSet =
      n > 5000
        ? subset(
            source,
            Int32Array.from({ length: 5000 }, (_, i) => i),
          )
        : source;
    const trained = state.trainer.params();
    const { acc } = evaluateOn((x) => classifierLogits(state, trained, x), evalSet);
    const backboneNames = new Set(Object.keys(args.backbone.paramShapes));
    return {
      params: cloneParams(pickParams(trained, (name) => backboneNames.has(name))),
      sourceHead: cloneParams(pickParams(trained, (name) => state.head.paramNames.includes(name))),
      sourceTrainAcc: acc,
    };
  } finally {
    await disposeClassifier(state);
  }
}

export interface TrialResult {
  metrics: Record<string, number>;
  /** The engine that ran the method's steps. */
  engine: Engine;
  /** Per-epoch validation accuracy and mean training loss. */
  curve: { epoch: number; trainLoss: number; valAcc: number; valLoss: number }[];
}

/**
 * One trial: a method trained on a task's target data, model selection by
 * target-val accuracy, ties broken by val loss (evaluated every epoch, best
 * snapshot kept), then the
 * target test set. The runner owns every tensor it creates and disposes the
 * method's state even when the method throws. The method's hooks may be
 * asynchronous (v2 contract): each is awaited before the next call.
 */
export async function runTrial(args: {
  task: TaskPair;
  method: AnyTransferMethod;
  config: LoopConfig;
  backbone: Backbone;
  seed: number;
  pretrained?: Params;
  /** The source head from pre-training (for methods that distil it). */
  sourceHead?: Params;
  /** The engine asked for (default: onnxruntime where the method and backbone support it). */
  engine?: Engine;
  onEpoch?: (e: ProgressEvent) => void;
}): Promise<TrialResult> {
  const { task, method, config } = args;
  checkSpecificationVersion(method);
  const target = task.target;
  const rng = createRng(args.seed).derive(`trial:${method.id}`);
  const stepsPerEpoch = Math.ceil(target.train.y.length / config.batchSize);
  if (method.needs.pretrainedBackbone && !args.pretrained) {
    throw new Error(`method "${method.id}" needs a pretrained backbone and none was given`);
  }
  const engine = chooseEngine(method, args.backbone, args.engine);
  // Typed arrays of the training set; tensors only if the method reads them.
  const targetTrain = createBatch(target.train.x, target.train.y, target.train.shape);
  let state0: Awaited<ReturnType<typeof method.init>>;
  try {
    state0 = await method.init({
      config,
      engine,
      backbone: args.backbone,
      numClasses: target.train.numClasses,
      ...(args.pretrained ? { pretrained: args.pretrained } : {}),
      ...(args.sourceHead ? { sourceHead: args.sourceHead } : {}),
      sourceNumClasses: task.source.train.numClasses,
      targetTrain,
      rng: rng.derive('init'),
      totalSteps: config.epochs * stepsPerEpoch,
    });
  } finally {
    disposeBatch(targetTrain);
  }
  let state = state0;
  let best: Params | undefined;
  let bestVal = -1;
  let bestValLoss = Number.POSITIVE_INFINITY;
  let bestEpoch = 0;
  const curve: TrialResult['curve'] = [];
  try {
    const batchRng = rng.derive('batches');
    const sourceRng = rng.derive('source-batches');
    const sourceIter = method.needs.sourceBatches
      ? endless(task.source.train, config.batchSize, sourceRng)
      : undefined;
    let step = 0;
    for (let epoch = 1; epoch <= config.epochs; epoch++) {
      let lossSum = 0;
      let count = 0;
      for (const idx of batches(target.train, config.batchSize, batchRng)) {
        const targetBatch = datasetBatch(target.train, idx);
        const sourceBatch = sourceIter
          ? datasetBatch(task.source.train, sourceIter.next().value as Int32Array)
          : undefined;
        try {
          const out = await method.trainStep(state, {
            target: targetBatch,
            ...(sourceBatch ? { source: sourceBatch } : {}),
            step,
          });
          state = out.state;
          if (!Number.isFinite(out.loss))
            throw new Error(`training diverged at step ${step}: loss is ${out.loss}`);
          lossSum += out.loss;
          count++;
          step++;
        } finally {
          disposeBatch(targetBatch);
          disposeBatch(sourceBatch);
        }
      }
      const live = await method.predictParams(state);
      const val = evaluateOn((x) => method.predict(state, live, x), target.val);
      curve.push({
        epoch,
        trainLoss: lossSum / Math.max(1, count),
        valAcc: val.acc,
        valLoss: val.loss,
      });
      // A small val set saturates: accuracy ties are broken by val loss, so
      // selection does not stop at the first, barely-trained epoch that ties.
      if (val.acc > bestVal || (val.acc === bestVal && val.loss < bestValLoss)) {
        disposeParams(best);
        best = cloneParams(live);
        bestVal = val.acc;
        bestValLoss = val.loss;
        bestEpoch = epoch;
      }
      args.onEpoch?.({ phase: 'train', epoch, epochs: config.epochs });
    }
    const selected = best as Params;
    const test = evaluateOn((x) => method.predict(state, selected, x), target.test);
    return {
      metrics: {
        target_test_acc: test.acc,
        target_test_loss: test.loss,
        target_val_acc: bestVal,
        target_val_loss: bestValLoss,
        best_epoch: bestEpoch,
        target_train_size: target.train.y.length,
        ...(method.metrics ? method.metrics(state) : {}),
      },
      engine,
      curve,
    };
  } finally {
    disposeParams(best);
    await method.dispose(state);
  }
}

/**
 * The engine a trial runs on: the one asked for when the method runs on it
 * (and, for onnxruntime, the backbone has a graph form), else the method's
 * first engine that works — onnxruntime before tfjs. A method that declares
 * no engines runs on tfjs.
 */
export function chooseEngine(
  method: AnyTransferMethod,
  backbone: Backbone,
  requested?: Engine,
): Engine {
  const supported = (method.engines ?? ['tfjs']).filter(
    (e) => e !== 'onnxruntime' || backbone.emitGraph !== undefined,
  );
  if (requested && supported.includes(requested)) return requested;
  if (requested === 'tfjs') return 'tfjs';
  return supported.includes('onnxruntime') ? 'onnxruntime' : 'tfjs';
}

/** Source minibatches for as long as the target loop wants them, reshuffled each pass. */
function* endless(
  ds: Dataset,
  batchSize: number,
  rng: ReturnType<typeof createRng>,
): Generator<Int32Array> {
  for (;;) yield* batches(ds, batchSize, rng, { dropLast: ds.y.length >= batchSize });
}
