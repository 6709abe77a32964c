import { cloneParams } from '@transferlab/core';
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

export type LinearProbeConfig = OptimConfig;

/** The source-pretrained backbone frozen; only a new linear head is trained on the target. */
export const linearProbe: TransferMethod<LinearProbeConfig, ClassifierState> = {
  id: 'linear-probe',
  title: 'Linear probe',
  description: 'Frozen source-pretrained backbone; a new linear head trained on the target.',
  defaults: {
    epochs: 30,
    batchSize: 32,
    optimizer: 'adam',
    lr: 1e-2,
    momentum: 0.9,
    weightDecay: 0,
    schedule: 'constant',
  },
  needs: { pretrainedBackbone: true, sourceBatches: false },
  validate(options) {
    const c = mergeConfig(linearProbe.id, linearProbe.defaults, options);
    validateOptimConfig(linearProbe.id, c);
    return c;
  },
  init(ctx) {
    if (!ctx.pretrained) throw new Error('linear-probe needs a pretrained backbone');
    return initClassifier({
      backbone: ctx.backbone,
      backboneParams: cloneParams(ctx.pretrained),
      numClasses: ctx.numClasses,
      config: ctx.config,
      backboneLrMultiplier: 0,
      rng: ctx.rng,
      totalSteps: ctx.totalSteps,
    });
  },
  trainStep: (state, input) => classifierStep(state, input.target, input.step),
  predictParams: (state) => state.params,
  predict: classifierLogits,
  dispose: disposeClassifier,
};
