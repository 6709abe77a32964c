import * as tf from '@tensorflow/tfjs-core';
import {
  disposeMultiHead,
  initialBackbone,
  initMultiHead,
  multiHeadStep,
  requireSourceClasses,
  SOURCE_HEAD,
  TARGET_HEAD,
  targetLogits,
} from '../shared/multi-head.js';
import { TRANSFER_METHOD_SPECIFICATION_VERSION, type TransferMethod } from '../types.js';
import {
  ID,
  type MerlinConfig,
  type MerlinState,
  merlinDefaults,
  minBatchSize,
  validateMerlin,
} from './config.js';
import { lossTerms, prepareBatch } from './loss.js';
import { splitSizes } from './split.js';

export type { MerlinConfig, MerlinState } from './config.js';
export { lossTerms, type PreparedBatch, prepareBatch } from './loss.js';

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
  specificationVersion: TRANSFER_METHOD_SPECIFICATION_VERSION,
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
  defaults: merlinDefaults,
  // `needs` is static while sourceWeight is an option: the runner always
  // provides source batches and the method ignores them when sourceWeight is
  // 0 (their cost is one small tensor copy per step). Likewise the
  // pretrained backbone is ignored when fromPretrained is false.
  needs: { pretrainedBackbone: true, sourceBatches: true },
  validate: validateMerlin,
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
