import * as tf from '@tensorflow/tfjs-core';
import { cloneParams, createRng, disposeParams, type Params, type Rng } from '@transferlab/core';
import { batches, type Dataset } from '@transferlab/datasets';
import { accuracy, crossEntropy } from '@transferlab/evaluation';
import {
  type AnyTransferMethod,
  checkSpecificationVersion,
  createBatch,
  disposeBatch,
  type Engine,
  type LoopConfig,
} from '@transferlab/methods';
import type { Backbone } from '@transferlab/models';
import { chooseEngine, datasetBatch, predictChunkSize } from '../runner.js';
import { type FitSplit, splitBatches } from './data.js';

/** Source minibatches for as long as the target loop wants them, reshuffled each pass. */
function* endless(ds: Dataset, batchSize: number, rng: Rng): Generator<Int32Array> {
  for (;;) yield* batches(ds, batchSize, rng, { dropLast: ds.y.length >= batchSize });
}

/**
 * A split's logits (n × classes, row order), predicted in chunks of
 * `predictChunkSize` rows whether the split is in memory or streamed.
 */
export async function splitLogits(
  predict: (x: tf.Tensor) => tf.Tensor,
  split: FitSplit,
): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  let total = 0;
  for await (const b of splitBatches(split, undefined, predictChunkSize(split.shape))) {
    const out = tf.tidy(() => predict(tf.tensor(b.x, [b.y.length, ...split.shape], 'float32')));
    const values = out.dataSync() as Float32Array;
    out.dispose();
    parts.push(values);
    total += values.length;
  }
  const logits = new Float32Array(total);
  let at = 0;
  for (const p of parts) {
    logits.set(p, at);
    at += p.length;
  }
  return logits;
}

/** Accuracy, mean cross-entropy and logits of `predict` on a split, in memory or streamed. */
export async function evaluateSplit(
  predict: (x: tf.Tensor) => tf.Tensor,
  split: FitSplit,
): Promise<{ acc: number; loss: number; logits: Float32Array }> {
  const values = await splitLogits(predict, split);
  const logits = tf.tensor2d(values, [split.y.length, values.length / split.y.length]);
  try {
    return {
      acc: accuracy(logits, split.y),
      loss: crossEntropy(logits, split.y),
      logits: values,
    };
  } finally {
    logits.dispose();
  }
}

/** One training minibatch, rows in the model's layout (one example: `train.shape`). */
export interface TrainBatch {
  readonly x: Float32Array;
  readonly y: Int32Array;
}

export interface EpochReport {
  epoch: number;
  epochs: number;
  trainLoss: number;
  valAcc: number;
  valLoss: number;
  /** This epoch is the best so far (and its weights are kept). */
  best: boolean;
}

/** A trained method, its state still alive so that it can predict and be exported; call `dispose`. */
export interface FitTrained {
  readonly engine: Engine;
  /** The weights of the selected epoch (backbone, running statistics and head). */
  readonly selected: Params;
  readonly bestEpoch: number;
  readonly valAcc: number;
  readonly valLoss: number;
  readonly curve: readonly EpochReport[];
  /** The selected model's logits, as the method computes them. */
  predict(x: tf.Tensor): tf.Tensor;
  metrics(): Record<string, number>;
  dispose(): Promise<void>;
}

/**
 * Train `method` on `train` with selection on `val`, as `runTrial` does
 * (best val accuracy, ties broken by val loss, the best epoch's weights kept),
 * but keeping the selected model for the caller — fit evaluates it per class
 * and exports it — and taking each epoch's batches from `epochBatches` when
 * given (training-time augmentation streamed from disk).
 */
export async function trainWithSelection(args: {
  method: AnyTransferMethod;
  config: LoopConfig;
  backbone: Backbone;
  pretrained?: Params;
  /** The source head from pre-training, for methods that distil it (LwF, Co-Tuning). */
  sourceHead?: Params;
  /** Source training set, for methods that train on source batches too (joint, MeRLin). */
  source?: Dataset;
  /** In memory, or streamed from disk (then methods get no `targetTrain` at init). */
  train: FitSplit;
  val: FitSplit;
  seed: number;
  engine?: Engine;
  epochBatches?: (epoch: number) => AsyncIterable<TrainBatch>;
  onEpoch?: (e: EpochReport) => void;
}): Promise<FitTrained> {
  const { method, config, train, val } = args;
  checkSpecificationVersion(method);
  if (method.needs.pretrainedBackbone && !args.pretrained)
    throw new Error(`method "${method.id}" needs a pretrained backbone and none was given`);
  if (method.needs.sourceBatches && !args.source)
    throw new Error(`method "${method.id}" trains on source batches and no source was given`);
  const rng = createRng(args.seed).derive(`fit:${method.id}`);
  const engine = chooseEngine(method, args.backbone, args.engine);
  const stepsPerEpoch = Math.ceil(train.y.length / config.batchSize);
  // A streamed split has no x to hand over: methods that read targetTrain are refused by fit.
  const whole = train.streamed ? undefined : createBatch(train.x, train.y, train.shape);
  let state: unknown;
  try {
    state = await method.init({
      config,
      engine,
      backbone: args.backbone,
      numClasses: train.numClasses,
      ...(args.pretrained ? { pretrained: args.pretrained } : {}),
      ...(args.sourceHead ? { sourceHead: args.sourceHead } : {}),
      ...(args.source ? { sourceNumClasses: args.source.numClasses } : {}),
      ...(whole ? { targetTrain: whole } : {}),
      rng: rng.derive('init'),
      totalSteps: config.epochs * stepsPerEpoch,
    });
  } finally {
    disposeBatch(whole);
  }
  let best: Params | undefined;
  let bestVal = -1;
  let bestValLoss = Number.POSITIVE_INFINITY;
  let bestEpoch = 0;
  const curve: EpochReport[] = [];
  try {
    const batchRng = rng.derive('batches');
    const sourceIter =
      method.needs.sourceBatches && args.source
        ? endless(args.source, config.batchSize, rng.derive('source-batches'))
        : undefined;
    let step = 0;
    const takeStep = async (x: Float32Array, y: Int32Array) => {
      const batch = createBatch(x, y, train.shape);
      const source =
        sourceIter && args.source
          ? datasetBatch(args.source, sourceIter.next().value as Int32Array)
          : undefined;
      try {
        const out = await method.trainStep(state, {
          target: batch,
          ...(source ? { source } : {}),
          step,
        });
        state = out.state;
        if (!Number.isFinite(out.loss))
          throw new Error(`training diverged at step ${step}: loss is ${out.loss}`);
        step++;
        return out.loss;
      } finally {
        disposeBatch(batch);
        disposeBatch(source);
      }
    };
    for (let epoch = 1; epoch <= config.epochs; epoch++) {
      let lossSum = 0;
      let count = 0;
      if (args.epochBatches) {
        for await (const b of args.epochBatches(epoch)) {
          lossSum += await takeStep(b.x, b.y);
          count++;
        }
      } else if (train.streamed) {
        // The batches the in-memory loop below would take, decoded in that order.
        const order = Int32Array.from(
          [...batches(train, config.batchSize, batchRng)].flatMap((idx) => Array.from(idx)),
        );
        for await (const b of splitBatches(train, order, config.batchSize)) {
          lossSum += await takeStep(b.x, b.y);
          count++;
        }
      } else {
        for (const idx of batches(train, config.batchSize, batchRng)) {
          const b = datasetBatch(train, idx);
          try {
            lossSum += await takeStep(b.xData, b.yData);
            count++;
          } finally {
            disposeBatch(b);
          }
        }
      }
      const live = await method.predictParams(state);
      const v = await evaluateSplit((x) => method.predict(state, live, x), val);
      const isBest = v.acc > bestVal || (v.acc === bestVal && v.loss < bestValLoss);
      if (isBest) {
        disposeParams(best);
        best = cloneParams(live);
        bestVal = v.acc;
        bestValLoss = v.loss;
        bestEpoch = epoch;
      }
      const report = {
        epoch,
        epochs: config.epochs,
        trainLoss: lossSum / Math.max(1, count),
        valAcc: v.acc,
        valLoss: v.loss,
        best: isBest,
      };
      curve.push(report);
      args.onEpoch?.(report);
    }
  } catch (err) {
    disposeParams(best);
    await method.dispose(state);
    throw err;
  }
  const selected = best as Params;
  return {
    engine,
    selected,
    bestEpoch,
    valAcc: bestVal,
    valLoss: bestValLoss,
    curve,
    predict: (x) => method.predict(state, selected, x),
    metrics: () => (method.metrics ? method.metrics(state) : {}),
    async dispose() {
      disposeParams(selected);
      await method.dispose(state);
    },
  };
}
