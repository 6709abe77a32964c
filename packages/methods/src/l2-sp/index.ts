import { cloneParams, mergeParams } from '@transferlab/core';
import { type Backbone, type LinearHead, linearHead } from '@transferlab/models';
import { mergeConfig, requireNonNegative } from '../shared/config.js';
import type { LossFn } from '../shared/loss-ops.js';
import { type OptimConfig, validateOptimConfig } from '../shared/optim.js';
import { createNetworkTrainer, type NetworkTrainer } from '../shared/trainer.js';
import { TRANSFER_METHOD_SPECIFICATION_VERSION, type TransferMethod } from '../types.js';

export interface L2SpConfig extends OptimConfig {
  /** α: weight of (α/2)‖w − w⁰‖² over the backbone's trained parameters (w⁰ the pretrained start). */
  alpha: number;
  /** β: weight of (β/2)‖w‖² over the new head's parameters. */
  beta: number;
  /** The backbone's learning rate relative to the head's. */
  backboneLrMultiplier: number;
}

export interface L2SpState {
  readonly backbone: Backbone;
  readonly head: LinearHead;
  readonly trainer: NetworkTrainer;
}

const ID = 'l2-sp';

/**
 * CE + (α/2) Σ_backbone ‖w − w⁰‖² + (β/2) Σ_head ‖w‖², once for both engines.
 * The starting point w⁰ is the trainer's frozen copy of the pretrained backbone.
 */
export function l2SpLoss(
  head: LinearHead,
  backboneParams: readonly string[],
  c: { alpha: number; beta: number },
): LossFn {
  return (ops) => {
    let loss = ops.crossEntropy(ops.linear(ops.features(ops.target.x), head), ops.target.y);
    for (const name of backboneParams) {
      const drift = ops.sub(ops.param(name), ops.param(name, 'frozen'));
      loss = ops.add(loss, ops.scale(ops.sum(ops.square(drift)), c.alpha / 2));
    }
    for (const name of head.paramNames)
      loss = ops.add(loss, ops.scale(ops.sum(ops.square(ops.param(name))), c.beta / 2));
    return loss;
  };
}

/**
 * L2-SP (Li, Grandvalet & Davoine 2018): fine-tuning with the backbone pulled
 * toward its pretrained starting point instead of toward zero, and plain L2
 * on the new head. The paper penalises weights; as TLlib does, every trained
 * backbone parameter is penalised (normalisation statistics are not trained
 * and are not). Defaults: the paper's α = 0.1, β = 0.01, on fine-tuning's
 * optimizer settings.
 */
export const l2Sp: TransferMethod<L2SpConfig, L2SpState> = {
  specificationVersion: TRANSFER_METHOD_SPECIFICATION_VERSION,
  id: ID,
  title: 'L2-SP',
  description:
    'Fine-tuning regularised toward the pretrained weights: CE + α/2‖w − w⁰‖² (backbone) + β/2‖w‖² (head).',
  reference: {
    authors: 'Li, Grandvalet, Davoine',
    title: 'Explicit Inductive Bias for Transfer Learning with Convolutional Networks',
    year: 2018,
    arxiv: '1802.01483',
  },
  defaults: {
    epochs: 30,
    batchSize: 32,
    optimizer: 'adam',
    lr: 1e-2,
    momentum: 0.9,
    weightDecay: 0,
    schedule: 'constant',
    alpha: 0.1,
    beta: 0.01,
    backboneLrMultiplier: 0.03,
  },
  needs: { pretrainedBackbone: true, sourceBatches: false },
  engines: ['onnxruntime', 'tfjs'],
  validate(options) {
    const c = mergeConfig(ID, l2Sp.defaults, options);
    validateOptimConfig(ID, c);
    requireNonNegative(ID, 'alpha', c.alpha);
    requireNonNegative(ID, 'beta', c.beta);
    requireNonNegative(ID, 'backboneLrMultiplier', c.backboneLrMultiplier);
    return c;
  },
  async init(ctx) {
    if (!ctx.pretrained) throw new Error(`method "${ID}": needs the source-pretrained backbone`);
    const head = linearHead(ctx.backbone.featureDim, ctx.numClasses, 'head');
    const statistics = new Set(ctx.backbone.nonTrainable ?? []);
    const penalised = Object.keys(ctx.backbone.paramShapes).filter((n) => !statistics.has(n));
    const missing = penalised.filter((n) => !ctx.pretrained?.[n]);
    if (missing.length > 0)
      throw new Error(`method "${ID}": the pretrained weights lack ${missing.join(', ')}`);
    const trainer = await createNetworkTrainer({
      engine: ctx.engine ?? 'tfjs',
      backbone: ctx.backbone,
      params: mergeParams(cloneParams(ctx.pretrained), head.init(ctx.rng.derive('head'))),
      isHead: (name) => head.paramNames.includes(name),
      config: ctx.config,
      totalSteps: ctx.totalSteps,
      backboneLrMultiplier: ctx.config.backboneLrMultiplier,
      loss: l2SpLoss(head, ctx.config.backboneLrMultiplier > 0 ? penalised : [], ctx.config),
      frozen: cloneParams(ctx.pretrained),
      ...(ctx.threads ? { intraOpNumThreads: ctx.threads } : {}),
    });
    return { backbone: ctx.backbone, head, trainer };
  },
  trainStep: async (state, input) => ({ state, loss: await state.trainer.step(input) }),
  predictParams: (state) => state.trainer.params(),
  predict: (state, params, x) => state.head.apply(params, state.backbone.apply(params, x).features),
  dispose: (state) => state.trainer.dispose(),
};
