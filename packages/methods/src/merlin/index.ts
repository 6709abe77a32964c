import { mergeParams } from '@transferlab/core';
import { linearHead } from '@transferlab/models';
import {
  initialBackbone,
  requireSourceClasses,
  SOURCE_HEAD,
  TARGET_HEAD,
} from '../shared/multi-head.js';
import { createNetworkTrainer } from '../shared/trainer.js';
import { TRANSFER_METHOD_SPECIFICATION_VERSION, type TransferMethod } from '../types.js';
import {
  ID,
  type MerlinConfig,
  type MerlinState,
  merlinDefaults,
  minBatchSize,
  validateMerlin,
} from './config.js';
import { closedForm } from './head-fit.js';
import { merlinLoss, merlinValueSpecs, prepareBatch } from './loss.js';
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
  engines: ['onnxruntime', 'tfjs'],
  async init(ctx) {
    const c = ctx.config;
    const { nTrain, nVal } = splitSizes(c.batchSize, c.valFraction);
    if (nTrain < ctx.numClasses || nVal < ctx.numClasses) {
      throw new Error(
        `method "${ID}": batchSize ${c.batchSize} with valFraction ${c.valFraction} splits a batch into ${nTrain} train / ${nVal} val examples, fewer than the ${ctx.numClasses} classes (each half needs every class); use batchSize ≥ ${minBatchSize(c.valFraction, ctx.numClasses)}`,
      );
    }
    const dim = ctx.backbone.featureDim;
    // Each head from rng.derive(prefix): the evaluation head starts where the classifier's does.
    const target = linearHead(dim, ctx.numClasses, TARGET_HEAD);
    const source =
      c.sourceWeight > 0 ? linearHead(dim, requireSourceClasses(ID, ctx), SOURCE_HEAD) : undefined;
    const params = mergeParams(
      initialBackbone(ID, ctx),
      target.init(ctx.rng.derive(TARGET_HEAD)),
      ...(source ? [source.init(ctx.rng.derive(SOURCE_HEAD))] : []),
    );
    const headNames = new Set([...target.paramNames, ...(source?.paramNames ?? [])]);
    const heads = { target, ...(source ? { source } : {}) };
    const form = closedForm(nTrain, dim);
    const trainer = await createNetworkTrainer({
      engine: ctx.engine ?? 'tfjs',
      backbone: ctx.backbone,
      params,
      isHead: (name) => headNames.has(name),
      config: c,
      totalSteps: ctx.totalSteps,
      backboneLrMultiplier: c.backboneLrMultiplier,
      loss: merlinLoss(c, heads, form),
      values: merlinValueSpecs(ctx.numClasses, form === 'dual' ? 'T' : dim),
      sourceBatches: c.sourceWeight > 0,
      ...(ctx.threads ? { intraOpNumThreads: ctx.threads } : {}),
    });
    return {
      config: c,
      backbone: ctx.backbone,
      heads,
      trainer,
      form,
      numClasses: ctx.numClasses,
      splitRng: ctx.rng.derive('merlin-split'),
    };
  },
  async trainStep(state, input) {
    const c = state.config;
    const source = c.sourceWeight > 0 ? input.source : undefined;
    if (c.sourceWeight > 0 && !source) {
      throw new Error(
        `method "${ID}": sourceWeight ${c.sourceWeight} > 0 needs a source minibatch (input.source) every step`,
      );
    }
    const prepared = prepareBatch(state, input.target, input.step);
    try {
      const loss = await state.trainer.step(
        { target: prepared.batch, ...(source ? { source } : {}), step: input.step },
        prepared.values,
      );
      return { state, loss };
    } finally {
      prepared.dispose();
    }
  },
  predictParams: (state) => state.trainer.params(),
  predict: (state, params, x) =>
    state.heads.target.apply(params, state.backbone.apply(params, x).features),
  dispose: (state) => state.trainer.dispose(),
};
