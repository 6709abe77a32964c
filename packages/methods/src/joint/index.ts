import { mergeParams, type Params } from '@transferlab/core';
import { type Backbone, type LinearHead, linearHead } from '@transferlab/models';
import { mergeConfig, requireNonNegative, requirePositive } from '../shared/config.js';
import type { LossFn } from '../shared/loss-ops.js';
import {
  initialBackbone,
  requireSourceClasses,
  SOURCE_HEAD,
  TARGET_HEAD,
} from '../shared/multi-head.js';
import { type OptimConfig, validateOptimConfig } from '../shared/optim.js';
import { createNetworkTrainer, type NetworkTrainer } from '../shared/trainer.js';
import { TRANSFER_METHOD_SPECIFICATION_VERSION, type TransferMethod } from '../types.js';

export interface JointConfig extends OptimConfig {
  /** α in  source CE + α · target CE. */
  targetWeight: number;
  /** Start from the source-pretrained backbone (true) or a random one (false: joint training from scratch). */
  fromPretrained: boolean;
  /** The backbone's learning rate relative to the heads' (0 freezes it). */
  backboneLrMultiplier: number;
}

const ID = 'joint';

export interface JointState {
  readonly backbone: Backbone;
  /** The target head (`head`, what predict uses) and the source head (`source_head`). */
  readonly target: LinearHead;
  readonly source: LinearHead;
  readonly trainer: NetworkTrainer;
}

/** source CE + α · target CE, once for both engines (the source pass first, as the statistics chain). */
export function jointLoss(source: LinearHead, target: LinearHead, alpha: number): LossFn {
  return (ops) => {
    const batch = ops.source;
    if (!batch)
      throw new Error(
        `method "${ID}": every step needs a source minibatch (input.source); the runner provides one because needs.sourceBatches is true`,
      );
    const src = ops.crossEntropy(ops.linear(ops.features(batch.x), source), batch.y);
    const tgt = ops.crossEntropy(ops.linear(ops.features(ops.target.x), target), ops.target.y);
    return ops.add(src, ops.scale(tgt, alpha));
  };
}

/**
 * Joint training: one backbone, a source head and a target head, trained on
 * a source minibatch and a target minibatch per step with
 * loss = CE(source) + targetWeight · CE(target). The baseline the MeRLin
 * paper shows can learn source-specific features and overfit the target.
 */
export const joint: TransferMethod<JointConfig, JointState> = {
  specificationVersion: TRANSFER_METHOD_SPECIFICATION_VERSION,
  id: ID,
  title: 'Joint training',
  description:
    'Shared backbone with a source head and a target head; loss = source CE + targetWeight × target CE on a source and a target minibatch per step.',
  reference: {
    authors: 'Liu, HaoChen, Wei, Ma',
    title: 'Meta-learning Transferable Representations with a Single Target Domain (baseline)',
    year: 2020,
    arxiv: '2011.01418',
  },
  defaults: {
    epochs: 30,
    batchSize: 32,
    optimizer: 'adam',
    // As fine-tune: new heads need a large step, the pretrained backbone a
    // small one. From scratch (fromPretrained: false) use lr 1e-3 and a
    // multiplier of 1, as `scratch` does.
    lr: 1e-2,
    momentum: 0.9,
    weightDecay: 0,
    schedule: 'constant',
    targetWeight: 1,
    fromPretrained: true,
    backboneLrMultiplier: 0.03,
  },
  needs: { pretrainedBackbone: true, sourceBatches: true },
  engines: ['onnxruntime', 'tfjs'],
  validate(options) {
    const c = mergeConfig(ID, joint.defaults, options);
    validateOptimConfig(ID, c);
    requirePositive(ID, 'targetWeight', c.targetWeight);
    requireNonNegative(ID, 'backboneLrMultiplier', c.backboneLrMultiplier);
    return c;
  },
  async init(ctx) {
    const sourceClasses = requireSourceClasses(ID, ctx);
    // Each head from rng.derive(prefix): the target head starts where the classifier's does.
    const target = linearHead(ctx.backbone.featureDim, ctx.numClasses, TARGET_HEAD);
    const source = linearHead(ctx.backbone.featureDim, sourceClasses, SOURCE_HEAD);
    const params: Params = mergeParams(
      initialBackbone(ID, ctx),
      target.init(ctx.rng.derive(TARGET_HEAD)),
      source.init(ctx.rng.derive(SOURCE_HEAD)),
    );
    const heads = new Set([...target.paramNames, ...source.paramNames]);
    const trainer = await createNetworkTrainer({
      engine: ctx.engine ?? 'tfjs',
      backbone: ctx.backbone,
      params,
      isHead: (name) => heads.has(name),
      config: ctx.config,
      totalSteps: ctx.totalSteps,
      backboneLrMultiplier: ctx.config.backboneLrMultiplier,
      loss: jointLoss(source, target, ctx.config.targetWeight),
      sourceBatches: true,
      ...(ctx.threads ? { intraOpNumThreads: ctx.threads } : {}),
    });
    return { backbone: ctx.backbone, target, source, trainer };
  },
  async trainStep(state, input) {
    if (!input.source)
      throw new Error(
        `method "${ID}": every step needs a source minibatch (input.source); the runner provides one because needs.sourceBatches is true`,
      );
    return { state, loss: await state.trainer.step(input) };
  },
  predictParams: (state) => state.trainer.params(),
  predict: (state, params, x) =>
    state.target.apply(params, state.backbone.apply(params, x).features),
  dispose: (state) => state.trainer.dispose(),
};
