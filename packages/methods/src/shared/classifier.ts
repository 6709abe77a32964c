import type * as tf from '@tensorflow/tfjs-core';
import {
  cloneParams,
  mergeParams,
  type Params,
  type Rng,
  softmaxCrossEntropy,
} from '@transferlab/core';
import { type Backbone, type LinearHead, linearHead } from '@transferlab/models';
import {
  type Batch,
  type StepResult,
  TRANSFER_METHOD_SPECIFICATION_VERSION,
  type TransferMethod,
} from '../types.js';
import { mergeConfig } from './config.js';
import { type OptimConfig, validateOptimConfig } from './optim.js';
import {
  disposeTrainedModel,
  initTrainedModel,
  type TrainedModel,
  trainedModelStep,
} from './trained-model.js';

/** A backbone with a linear head, its weights, and its optimizer state. */
export interface ClassifierState extends TrainedModel {
  readonly head: LinearHead;
}

/**
 * A classifier from backbone weights (taken over: the state owns and
 * disposes them) and a fresh head. `backboneLrMultiplier` scales the
 * backbone's learning rate; 0 freezes it (no gradients are computed for it).
 * The backbone's `nonTrainable` parameters (BatchNormalization statistics)
 * never get gradients. When the backbone trains and has such statistics,
 * steps run it in training mode — batch statistics, running averages
 * carried from step to step, as PyTorch's `model.train()` — unless
 * `freezeBatchNorm` (then BN stays in inference mode with the stored statistics).
 */
export function initClassifier(args: {
  backbone: Backbone;
  backboneParams: Params;
  numClasses: number;
  config: OptimConfig;
  backboneLrMultiplier: number;
  rng: Rng;
  totalSteps: number;
  headPrefix?: string;
  freezeBatchNorm?: boolean;
}): ClassifierState {
  const head = linearHead(args.backbone.featureDim, args.numClasses, args.headPrefix ?? 'head');
  const headParams = head.init(args.rng.derive('head'));
  const model = initTrainedModel({
    backbone: args.backbone,
    params: mergeParams(args.backboneParams, headParams),
    config: args.config,
    totalSteps: args.totalSteps,
    isHead: (name) => head.paramNames.includes(name),
    backboneLrMultiplier: args.backboneLrMultiplier,
    ...(args.freezeBatchNorm !== undefined ? { freezeBatchNorm: args.freezeBatchNorm } : {}),
  });
  return { ...model, head };
}

export function classifierLogits(state: ClassifierState, params: Params, x: tf.Tensor): tf.Tensor {
  return state.head.apply(params, state.backbone.apply(params, x).features);
}

export function classifierStep(
  state: ClassifierState,
  batch: Batch,
  step: number,
): StepResult<ClassifierState> {
  return trainedModelStep(state, step, (p, norm) =>
    softmaxCrossEntropy(state.head.apply(p, norm.apply(p, batch.x).features), batch.y),
  );
}

export const disposeClassifier: (state: ClassifierState) => void = disposeTrainedModel;

/**
 * A transfer method that trains a backbone + linear head with cross-entropy
 * on the target: scratch, linear probe and fine-tuning differ only in where
 * the backbone starts and how fast it may move.
 */
export function supervisedMethod<C extends OptimConfig>(spec: {
  id: string;
  title: string;
  description: string;
  defaults: C;
  /** Start from the source-pretrained backbone, or from a random initialisation. */
  start: 'pretrained' | 'random';
  /** The backbone's learning rate relative to the head's; 0 freezes it. */
  backboneLrMultiplier: (config: C) => number;
  /** Extra range checks beyond the shared optimizer options. */
  check?: (config: C) => void;
  /** Keep BatchNormalization in inference mode while the backbone trains (default: train it). */
  freezeBatchNorm?: (config: C) => boolean;
}): TransferMethod<C, ClassifierState> {
  return {
    specificationVersion: TRANSFER_METHOD_SPECIFICATION_VERSION,
    id: spec.id,
    title: spec.title,
    description: spec.description,
    defaults: spec.defaults,
    needs: { pretrainedBackbone: spec.start === 'pretrained', sourceBatches: false },
    validate(options) {
      const config = mergeConfig<C>(spec.id, spec.defaults, options);
      validateOptimConfig(spec.id, config);
      spec.check?.(config);
      return config;
    },
    init(ctx) {
      if (spec.start === 'pretrained' && !ctx.pretrained)
        throw new Error(`${spec.id} needs a pretrained backbone`);
      return initClassifier({
        backbone: ctx.backbone,
        // The runner owns the pretrained weights: train a copy.
        backboneParams:
          ctx.pretrained && spec.start === 'pretrained'
            ? cloneParams(ctx.pretrained)
            : ctx.backbone.init(ctx.rng.derive('backbone')),
        numClasses: ctx.numClasses,
        config: ctx.config,
        backboneLrMultiplier: spec.backboneLrMultiplier(ctx.config),
        rng: ctx.rng,
        totalSteps: ctx.totalSteps,
        freezeBatchNorm: spec.freezeBatchNorm?.(ctx.config) ?? false,
      });
    },
    trainStep: (state, input) => classifierStep(state, input.target, input.step),
    predictParams: (state) => state.params,
    predict: classifierLogits,
    dispose: disposeClassifier,
  };
}
