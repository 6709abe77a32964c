import {
  type ClassifierState,
  classifierLogits,
  classifierStep,
  disposeClassifier,
  initClassifier,
  type OptimConfig,
  validateOptimConfig,
} from '../shared/classifier.js';
import { mergeConfig } from '../shared/config.js';
import type { TransferMethod } from '../types.js';

export type ScratchConfig = OptimConfig;

/** The no-transfer baseline: the target network from a random initialisation, trained on target data only. */
export const scratch: TransferMethod<ScratchConfig, ClassifierState> = {
  id: 'scratch',
  title: 'Train from scratch',
  description: 'Random initialisation, trained on the target only (no transfer).',
  defaults: {
    epochs: 30,
    batchSize: 32,
    optimizer: 'adam',
    lr: 1e-3,
    momentum: 0.9,
    weightDecay: 0,
    schedule: 'constant',
  },
  needs: { pretrainedBackbone: false, sourceBatches: false },
  validate(options) {
    const c = mergeConfig(scratch.id, scratch.defaults, options);
    validateOptimConfig(scratch.id, c);
    return c;
  },
  init: (ctx) =>
    initClassifier({
      backbone: ctx.backbone,
      backboneParams: ctx.backbone.init(ctx.rng.derive('backbone')),
      numClasses: ctx.numClasses,
      config: ctx.config,
      backboneLrMultiplier: 1,
      rng: ctx.rng,
      totalSteps: ctx.totalSteps,
    }),
  trainStep: (state, input) => classifierStep(state, input.target, input.step),
  predictParams: (state) => state.params,
  predict: classifierLogits,
  dispose: disposeClassifier,
};
