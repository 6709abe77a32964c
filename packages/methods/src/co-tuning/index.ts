import * as tf from '@tensorflow/tfjs-core';
import { cloneParams, mergeParams, type Params } from '@transferlab/core';
import { type Backbone, type LinearHead, linearHead } from '@transferlab/models';
import { mergeConfig, requireNonNegative, requirePositive } from '../shared/config.js';
import { frozenFeatures, requireTargetTrain } from '../shared/host-features.js';
import type { LossFn } from '../shared/loss-ops.js';
import { requireSourceHead, SOURCE_HEAD, TARGET_HEAD } from '../shared/multi-head.js';
import { type OptimConfig, pretrainedOptimDefaults, validateOptimConfig } from '../shared/optim.js';
import { createNetworkTrainer, type NetworkTrainer } from '../shared/trainer.js';
import { TRANSFER_METHOD_SPECIFICATION_VERSION, type TransferMethod } from '../types.js';

export interface CoTuningConfig extends OptimConfig {
  /** λ: weight of the source-head term. */
  lambda: number;
  /** T: the source head's probabilities are softmax(logits / T) when the relationship is learned. */
  temperature: number;
  /** The learning rate of the backbone and of the source head relative to the target head's. */
  backboneLrMultiplier: number;
}

const ID = 'co-tuning';
/** The step value holding each example's translated label p(y_s | y_t) [N, C_s]. */
export const CO_TUNING_TARGETS = 'co-tuning:targets';

/**
 * p(y_s | y_t), the direct approach of You et al. (2020, §3.3): the source
 * head's probabilities on the target training examples, averaged per target
 * class. `sourceLogits` [n, C_s]; returns [C_t, C_s] row-major, rows summing
 * to 1 (a class without examples gets the uniform row).
 */
export function categoryRelationship(
  sourceLogits: tf.Tensor2D,
  labels: Int32Array,
  targetClasses: number,
  temperature: number,
): Float32Array {
  const [n, cs] = sourceLogits.shape;
  const p = tf.tidy(() => tf.softmax(tf.div(sourceLogits, temperature)).dataSync());
  const out = new Float32Array(targetClasses * cs);
  const counts = new Float64Array(targetClasses);
  for (let i = 0; i < n; i++) {
    const t = labels[i] as number;
    counts[t] = (counts[t] as number) + 1;
    for (let j = 0; j < cs; j++)
      out[t * cs + j] = (out[t * cs + j] as number) + (p[i * cs + j] as number);
  }
  for (let t = 0; t < targetClasses; t++)
    for (let j = 0; j < cs; j++)
      out[t * cs + j] = counts[t] ? (out[t * cs + j] as number) / (counts[t] as number) : 1 / cs;
  return out;
}

/**
 * CE(target head(f(x)), y) + λ · CE(source head(f(x)), p(y_s | y)), once for
 * both engines; the translated labels are the step value `CO_TUNING_TARGETS`.
 */
export function coTuningLoss(target: LinearHead, source: LinearHead, lambda: number): LossFn {
  return (ops) => {
    const f = ops.features(ops.target.x);
    const ce = ops.crossEntropy(ops.linear(f, target), ops.target.y);
    const soft = ops.mul(ops.value(CO_TUNING_TARGETS), ops.logSoftmax(ops.linear(f, source)));
    return ops.add(ce, ops.scale(ops.mean(ops.sum(soft, 1)), -lambda));
  };
}

export interface CoTuningState {
  readonly backbone: Backbone;
  readonly target: LinearHead;
  readonly source: LinearHead;
  readonly trainer: NetworkTrainer;
  /** p(y_s | y_t), [C_t, C_s] row-major. */
  readonly relationship: Float32Array;
}

/**
 * Co-Tuning (You, Kou, Jiang, Wang, Long 2020): the pretrained network keeps
 * its source head, and each target example also trains it, towards the
 * source categories its target label stands for — p(y_s | y_t), learned once
 * before training from the source head's predictions on the target training
 * set (the paper's direct approach, as TLlib). The source head trains at the
 * backbone's rate (TLlib: both at 0.1 × in fine-tuning mode).
 * Defaults: λ = 2.3 (TLlib), fine-tuning's optimizer.
 *
 * Deviation: the paper calibrates the source probabilities (a temperature
 * fitted on source validation data); methods see no source data, so
 * `temperature` is an option, 1 by default (TLlib does not calibrate either).
 */
export const coTuning: TransferMethod<CoTuningConfig, CoTuningState> = {
  specificationVersion: TRANSFER_METHOD_SPECIFICATION_VERSION,
  id: ID,
  title: 'Co-Tuning',
  description:
    'Fine-tuning that also trains the source head on target data, towards p(y_s | y_t) learned from its predictions: CE + λ · CE(source head, translated labels).',
  reference: {
    authors: 'You, Kou, Jiang, Wang, Long',
    title: 'Co-Tuning for Transfer Learning',
    year: 2020,
  },
  defaults: { ...pretrainedOptimDefaults, lambda: 2.3, temperature: 1 },
  needs: { pretrainedBackbone: true, sourceBatches: false },
  engines: ['onnxruntime', 'tfjs'],
  validate(options) {
    const c = mergeConfig(ID, coTuning.defaults, options);
    validateOptimConfig(ID, c);
    requireNonNegative(ID, 'lambda', c.lambda);
    requirePositive(ID, 'temperature', c.temperature);
    requireNonNegative(ID, 'backboneLrMultiplier', c.backboneLrMultiplier);
    return c;
  },
  async init(ctx) {
    const { backbone } = ctx;
    if (!ctx.pretrained) throw new Error(`method "${ID}": needs the source-pretrained backbone`);
    const sourceHead = requireSourceHead(ID, ctx, backbone.featureDim);
    const train = requireTargetTrain(ID, ctx);
    const sourceClasses = sourceHead[`${SOURCE_HEAD}.weight`]?.shape[1] as number;
    const target = linearHead(backbone.featureDim, ctx.numClasses, TARGET_HEAD);
    const source = linearHead(backbone.featureDim, sourceClasses, SOURCE_HEAD);
    const pretrained: Params = Object.fromEntries(
      Object.keys(backbone.paramShapes).map((n) => [n, ctx.pretrained?.[n] as tf.Tensor]),
    );
    const logits = tf.tidy(() =>
      source.apply(sourceHead, frozenFeatures(backbone, pretrained, train)),
    );
    const relationship = categoryRelationship(
      logits as tf.Tensor2D,
      train.yData,
      ctx.numClasses,
      ctx.config.temperature,
    );
    logits.dispose();
    const trainer = await createNetworkTrainer({
      engine: ctx.engine ?? 'tfjs',
      backbone,
      params: mergeParams(
        cloneParams(pretrained),
        target.init(ctx.rng.derive(TARGET_HEAD)),
        cloneParams(sourceHead),
      ),
      isHead: (n) => target.paramNames.includes(n),
      config: ctx.config,
      totalSteps: ctx.totalSteps,
      backboneLrMultiplier: ctx.config.backboneLrMultiplier,
      loss: coTuningLoss(target, source, ctx.config.lambda),
      values: { [CO_TUNING_TARGETS]: { type: 'float32', dims: ['N', sourceClasses] } },
      ...(ctx.threads ? { intraOpNumThreads: ctx.threads } : {}),
    });
    return { backbone, target, source, trainer, relationship };
  },
  async trainStep(state, input) {
    const cs = state.source.numClasses;
    const { n, yData } = input.target;
    const rows = new Float32Array(n * cs);
    for (let i = 0; i < n; i++)
      rows.set(
        state.relationship.subarray((yData[i] as number) * cs, ((yData[i] as number) + 1) * cs),
        i * cs,
      );
    const values = { [CO_TUNING_TARGETS]: { data: rows, dims: [n, cs] } };
    return { state, loss: await state.trainer.step(input, values) };
  },
  predictParams: (state) => state.trainer.params(),
  predict: (state, params, x) =>
    state.target.apply(params, state.backbone.apply(params, x).features),
  dispose: (state) => state.trainer.dispose(),
};
