import * as tf from '@tensorflow/tfjs-core';
import { softmaxCrossEntropy } from '@transferlab/core';
import { mergeConfig, requireNonNegative, requirePositive } from '../shared/config.js';
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
import { type OptimConfig, validateOptimConfig } from '../shared/optim.js';
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

/**
 * Joint training: one backbone, a source head and a target head, trained on
 * a source minibatch and a target minibatch per step with
 * loss = CE(source) + targetWeight · CE(target). The baseline the MeRLin
 * paper shows can learn source-specific features and overfit the target.
 */
export const joint: TransferMethod<JointConfig, MultiHeadState<JointConfig>> = {
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
  validate(options) {
    const c = mergeConfig(ID, joint.defaults, options);
    validateOptimConfig(ID, c);
    requirePositive(ID, 'targetWeight', c.targetWeight);
    requireNonNegative(ID, 'backboneLrMultiplier', c.backboneLrMultiplier);
    return c;
  },
  init(ctx) {
    const sourceClasses = requireSourceClasses(ID, ctx);
    return initMultiHead({
      backbone: ctx.backbone,
      backboneParams: initialBackbone(ID, ctx),
      heads: [
        { prefix: TARGET_HEAD, numClasses: ctx.numClasses },
        { prefix: SOURCE_HEAD, numClasses: sourceClasses },
      ],
      config: ctx.config,
      backboneLrMultiplier: ctx.config.backboneLrMultiplier,
      rng: ctx.rng,
      totalSteps: ctx.totalSteps,
    });
  },
  trainStep(state, input) {
    const { source, target } = input;
    if (!source) {
      throw new Error(
        `method "${ID}": every step needs a source minibatch (input.source); the runner provides one because needs.sourceBatches is true`,
      );
    }
    const alpha = state.config.targetWeight;
    return multiHeadStep(state, input.step, (p, norm) => {
      const src = softmaxCrossEntropy(
        headLogits(state, p, SOURCE_HEAD, features(state, p, source.x, norm)),
        source.y,
      );
      const tgt = softmaxCrossEntropy(targetLogits(state, p, target.x, norm), target.y);
      return tf.add(src, tf.mul(tgt, alpha)) as tf.Scalar;
    });
  },
  predictParams: (state) => state.params,
  predict: targetLogits,
  dispose: disposeMultiHead,
};
