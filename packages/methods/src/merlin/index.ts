import * as tf from '@tensorflow/tfjs-core';
import { type Params, type Rng, softmaxCrossEntropy } from '@transferlab/core';
import type { NormSession } from '../shared/batch-norm.js';
import { type OptimConfig, validateOptimConfig } from '../shared/classifier.js';
import {
  mergeConfig,
  requireNonNegative,
  requireOneOf,
  requirePositive,
} from '../shared/config.js';
import {
  disposeMultiHead,
  features,
  headLogits,
  initialBackbone,
  initMultiHead,
  type MultiHeadState,
  multiHeadStep,
  requireSourceClasses,
  SOURCE_HEAD,
  TARGET_HEAD,
  targetLogits,
} from '../shared/multi-head.js';
import type { Batch, TransferMethod } from '../types.js';
import { detach } from './detach.js';
import { type MerlinHead, merlinOuterLoss, regressionTargets } from './head-fit.js';
import { splitSizes, stratifiedSplit } from './split.js';

export interface MerlinConfig extends OptimConfig {
  /** The head fit in the inner problem: 'kernel' (cosine kernel ridge, the reference code's) or 'ridge' (linear ridge on raw features). */
  head: MerlinHead;
  /** Ridge λ > 0, relative to the mean squared feature norm (absolute for the cosine kernel). */
  lambda: number;
  /** Share of each minibatch used as the val half. */
  valFraction: number;
  /** 0: closed-form head; k > 0: k differentiable gradient steps from zero (squared loss). */
  innerSteps: number;
  /** Normalised inner step size in (0, 2), used when innerSteps > 0. */
  innerLr: number;
  /** Multiplies the head's val predictions before the cross-entropy (1 = the reference code). */
  logitScale: number;
  /** ρ in  meta loss + ρ · source CE; 0 ignores the source batches. */
  sourceWeight: number;
  /** Start from the source-pretrained backbone (true) or a random one (false). */
  fromPretrained: boolean;
  /** The backbone's learning rate relative to the evaluation (and source) head's. */
  backboneLrMultiplier: number;
}

export interface MerlinState {
  readonly model: MultiHeadState<MerlinConfig>;
  readonly numClasses: number;
  /** Split streams are derived from this per step, so a step's split depends only on the seed and the step index. */
  readonly splitRng: Rng;
}

const ID = 'merlin';

/** Smallest batch size whose two halves each hold at least `numClasses` examples. */
function minBatchSize(valFraction: number, numClasses: number): number {
  for (let b = 2 * numClasses; b < 1e6; b++) {
    const { nTrain, nVal } = splitSizes(b, valFraction);
    if (nTrain >= numClasses && nVal >= numClasses) return b;
  }
  return Number.POSITIVE_INFINITY;
}

/**
 * MeRLin (Meta Representation Learning): train the backbone so that a head
 * fit in closed form on one half of each target minibatch predicts the other
 * half well; the outer cross-entropy is differentiated through the fit
 * (a Cholesky solve with an implicit-function gradient), exactly.
 *
 * Per step on a target minibatch:
 * 1. a stratified split into train / val halves (deterministic per seed and step);
 * 2. features of the whole batch; a head fit on the train half (`head`,
 *    `lambda`, `innerSteps`: see head-fit.ts); cross-entropy of its val-half
 *    predictions × `logitScale` — the meta loss, whose gradient trains the backbone;
 * 3. + `sourceWeight` × source cross-entropy through a source head, when > 0;
 * 4. + the cross-entropy of an ordinary linear head (`head.*`) on
 *    stop-gradient features of the whole batch: the evaluation head. It does
 *    not shape the features (as in the reference code); `predict` uses it.
 * All terms go into one loss and one optimizer step (core's trainStep); the
 * reported loss is their sum.
 *
 * A batch with a single example (a dataset's last, ragged batch) cannot be
 * split: it trains the evaluation (and source) head only — unless the
 * backbone has batch normalisation over flat features, which (as in PyTorch)
 * refuses a batch of one in training mode.
 *
 * Defaults follow the closest public implementation (same lab:
 * AnanyaKumar/transfer_learning, merlin.py), which is MeRLin on the target
 * only, applied to a pretrained network: cosine-kernel head, λ = 1e-4, raw
 * predictions into the cross-entropy, backbone at Adam 1e-3, a linear head on
 * detached features for evaluation — hence `fromPretrained: true`,
 * `sourceWeight: 0`. The paper's other variant — representation learnt from
 * scratch on target and source together (its theory and semi-synthetic
 * setting) — is `{ fromPretrained: false, sourceWeight: ρ,
 * backboneLrMultiplier: 1 }`. Deviations from the reference code: the split
 * is stratified (the reference takes the first and second halves of a
 * shuffled batch); cosine similarities are not clamped to ±0.99999 (the
 * clamp only touches the unit diagonal and near-duplicate pairs, zeroing
 * their gradient, and the solve runs in float64 anyway); for the `ridge`
 * head λ is relative to the mean squared feature norm (for the cosine
 * kernel that norm is 1, so λ means the same as in the reference).
 */
export const merlin: TransferMethod<MerlinConfig, MerlinState> = {
  id: ID,
  title: 'MeRLin (meta representation learning)',
  description:
    'Backbone meta-trained so a closed-form head fit on half of each target batch predicts the other half (gradient through the solve); optional source loss; a linear head on detached features for evaluation.',
  reference: {
    authors: 'Liu, HaoChen, Wei, Ma',
    title: 'Meta-learning Transferable Representations with a Single Target Domain',
    year: 2020,
    arxiv: '2011.01418',
  },
  defaults: {
    epochs: 30,
    batchSize: 64,
    optimizer: 'adam',
    // The evaluation head is new and needs a large step; the backbone runs at
    // lr × backboneLrMultiplier = 1e-3, the reference code's Adam rate.
    lr: 1e-2,
    momentum: 0.9,
    weightDecay: 0,
    schedule: 'constant',
    head: 'kernel',
    lambda: 1e-4,
    valFraction: 0.5,
    innerSteps: 0,
    innerLr: 1,
    logitScale: 1,
    sourceWeight: 0,
    fromPretrained: true,
    backboneLrMultiplier: 0.1,
  },
  // `needs` is static while sourceWeight is an option: the runner always
  // provides source batches and the method ignores them when sourceWeight is
  // 0 (their cost is one small tensor copy per step). Likewise the
  // pretrained backbone is ignored when fromPretrained is false.
  needs: { pretrainedBackbone: true, sourceBatches: true },
  validate(options) {
    const c = mergeConfig(ID, merlin.defaults, options);
    validateOptimConfig(ID, c);
    requireOneOf(ID, 'head', c.head, ['kernel', 'ridge'] as const);
    if (!(c.lambda > 0 && Number.isFinite(c.lambda))) {
      throw new Error(
        `method "${ID}": lambda must be > 0 (the ridge term keeps the head's linear system positive definite), got ${c.lambda}`,
      );
    }
    if (!(c.valFraction > 0 && c.valFraction < 1)) {
      throw new Error(`method "${ID}": valFraction must be in (0, 1), got ${c.valFraction}`);
    }
    const { nTrain, nVal } = splitSizes(c.batchSize, c.valFraction);
    if (nTrain < 1 || nVal < 1) {
      throw new Error(
        `method "${ID}": batchSize ${c.batchSize} with valFraction ${c.valFraction} leaves the ${nTrain < 1 ? 'train' : 'val'} half empty (${nTrain} train / ${nVal} val examples)`,
      );
    }
    if (!(Number.isInteger(c.innerSteps) && c.innerSteps >= 0)) {
      throw new Error(`method "${ID}": innerSteps must be an integer ≥ 0, got ${c.innerSteps}`);
    }
    if (!(c.innerLr > 0 && c.innerLr < 2)) {
      throw new Error(
        `method "${ID}": innerLr must be in (0, 2) (it is normalised by the features' scale; ≥ 2 diverges), got ${c.innerLr}`,
      );
    }
    requirePositive(ID, 'logitScale', c.logitScale);
    requireNonNegative(ID, 'sourceWeight', c.sourceWeight);
    requireNonNegative(ID, 'backboneLrMultiplier', c.backboneLrMultiplier);
    return c;
  },
  init(ctx) {
    const c = ctx.config;
    const { nTrain, nVal } = splitSizes(c.batchSize, c.valFraction);
    if (nTrain < ctx.numClasses || nVal < ctx.numClasses) {
      throw new Error(
        `method "${ID}": batchSize ${c.batchSize} with valFraction ${c.valFraction} splits a batch into ${nTrain} train / ${nVal} val examples, fewer than the ${ctx.numClasses} classes (each half needs every class); use batchSize ≥ ${minBatchSize(c.valFraction, ctx.numClasses)}`,
      );
    }
    const heads = [{ prefix: TARGET_HEAD, numClasses: ctx.numClasses }];
    if (c.sourceWeight > 0) {
      heads.push({ prefix: SOURCE_HEAD, numClasses: requireSourceClasses(ID, ctx) });
    }
    return {
      model: initMultiHead({
        backbone: ctx.backbone,
        backboneParams: initialBackbone(ID, ctx),
        heads,
        config: c,
        backboneLrMultiplier: c.backboneLrMultiplier,
        rng: ctx.rng,
        totalSteps: ctx.totalSteps,
      }),
      numClasses: ctx.numClasses,
      splitRng: ctx.rng.derive('merlin-split'),
    };
  },
  trainStep(state, input) {
    const { model } = state;
    const c = model.config;
    const source = c.sourceWeight > 0 ? input.source : undefined;
    if (c.sourceWeight > 0 && !source) {
      throw new Error(
        `method "${ID}": sourceWeight ${c.sourceWeight} > 0 needs a source minibatch (input.source) every step`,
      );
    }
    const batch = prepareBatch(state, input.target, input.step);
    try {
      const out = multiHeadStep(model, input.step, (p, norm) => {
        const terms = lossTerms(state, p, batch, source, norm);
        let loss: tf.Tensor = terms.evalHead;
        if (terms.meta) loss = tf.add(loss, terms.meta);
        if (terms.source) loss = tf.add(loss, tf.mul(terms.source, c.sourceWeight));
        return loss as tf.Scalar;
      });
      return { state: { ...state, model: out.state }, loss: out.loss };
    } finally {
      batch.dispose();
    }
  },
  predictParams: (state) => state.model.params,
  predict: (state, params, x) => targetLogits(state.model, params, x),
  dispose: (state) => disposeMultiHead(state.model),
};

/** A target batch ready for MeRLin's loss: reordered as [train half; val half]. */
export interface PreparedBatch {
  x: tf.Tensor;
  y: tf.Tensor;
  /** Absent when the batch has a single example and cannot be split. */
  split?: { nTrain: number; trainTargets: tf.Tensor2D; valLabels: tf.Tensor };
  /** Frees the tensors made here (never the original batch's). */
  dispose(): void;
}

/**
 * Split the target batch (stratified, from the state's split stream for
 * this step) and build the train half's regression targets and the val
 * half's labels.
 */
export function prepareBatch(state: MerlinState, target: Batch, step: number): PreparedBatch {
  const labels = target.y.dataSync();
  if (labels.length < 2) return { x: target.x, y: target.y, dispose() {} };
  const { order, nTrain } = stratifiedSplit(
    labels,
    state.model.config.valFraction,
    state.splitRng.derive(step),
  );
  const ordered = Int32Array.from(order, (i) => labels[i] as number);
  const created = tf.tidy(() => ({
    x: tf.gather(target.x, tf.tensor1d(order, 'int32')),
    y: tf.tensor1d(ordered, 'int32'),
    trainTargets: regressionTargets(ordered.subarray(0, nTrain), state.numClasses),
    valLabels: tf.tensor1d(ordered.subarray(nTrain), 'int32'),
  }));
  return {
    x: created.x,
    y: created.y,
    split: { nTrain, trainTargets: created.trainTargets, valLabels: created.valLabels },
    dispose: () => tf.dispose([created.x, created.y, created.trainTargets, created.valLabels]),
  };
}

/**
 * The terms of MeRLin's loss at `params`: the evaluation head's
 * cross-entropy on stop-gradient features (trains only that head), the meta
 * loss (trains the backbone; absent for an unsplittable batch) and the
 * unweighted source cross-entropy (when a source batch is given).
 * `trainStep` minimises evalHead + meta + sourceWeight · source.
 */
export function lossTerms(
  state: MerlinState,
  params: Params,
  batch: PreparedBatch,
  source?: Batch,
  norm?: NormSession,
): { evalHead: tf.Scalar; meta?: tf.Scalar; source?: tf.Scalar } {
  const { model } = state;
  const c = model.config;
  // One forward pass for both halves: with normalisation in training mode
  // they share the batch's statistics, as in the reference implementation.
  const feats = features(model, params, batch.x, norm);
  const evalHead = softmaxCrossEntropy(
    headLogits(model, params, TARGET_HEAD, detach(feats)),
    batch.y,
  );
  const meta = batch.split
    ? merlinOuterLoss({
        feats,
        nTrain: batch.split.nTrain,
        trainTargets: batch.split.trainTargets,
        valLabels: batch.split.valLabels,
        logitScale: c.logitScale,
        fit: c,
      })
    : undefined;
  const src = source
    ? softmaxCrossEntropy(
        headLogits(model, params, SOURCE_HEAD, features(model, params, source.x, norm)),
        source.y,
      )
    : undefined;
  return { evalHead, ...(meta ? { meta } : {}), ...(src ? { source: src } : {}) };
}
