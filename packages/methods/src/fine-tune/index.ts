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

export interface FineTuneConfig extends OptimConfig {
  /** The backbone's learning rate relative to the head's (0 freezes it: a linear probe). */
  backboneLrMultiplier: number;
}

/** The whole network trained on the target, starting from the source-pretrained backbone and a new head. */
export const fineTune: TransferMethod<FineTuneConfig, ClassifierState> = {
  id: 'fine-tune',
  title: 'Fine-tuning',
  description:
    'Source-pretrained backbone + new head, all trained on the target (backbone lr × backboneLrMultiplier).',
  defaults: {
    epochs: 30,
    batchSize: 32,
    optimizer: 'adam',
    // A new head needs a large step while the pretrained backbone needs a small
    // one: a random head's gradients would otherwise wash the features out early.
    lr: 1e-2,
    momentum: 0.9,
    weightDecay: 0,
    schedule: 'constant',
    backboneLrMultiplier: 0.03,
  },
  needs: { pretrainedBackbone: true, sourceBatches: false },
  validate(options) {
    const c = mergeConfig(fineTune.id, fineTune.defaults, options);
    validateOptimConfig(fineTune.id, c);
    if (!(c.backboneLrMultiplier >= 0)) {
      throw new Error(
        `method "fine-tune": backboneLrMultiplier must be ≥ 0, got ${c.backboneLrMultiplier}`,
      );
    }
    return c;
  },
  init(ctx) {
    if (!ctx.pretrained) throw new Error('fine-tune needs a pretrained backbone');
    return initClassifier({
      backbone: ctx.backbone,
      backboneParams: cloneParams(ctx.pretrained),
      numClasses: ctx.numClasses,
      config: ctx.config,
      backboneLrMultiplier: ctx.config.backboneLrMultiplier,
      rng: ctx.rng,
      totalSteps: ctx.totalSteps,
    });
  },
  trainStep: (state, input) => classifierStep(state, input.target, input.step),
  predictParams: (state) => state.params,
  predict: classifierLogits,
  dispose: disposeClassifier,
};
