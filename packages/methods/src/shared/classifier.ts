import type * as tf from '@tensorflow/tfjs-core';
import {
  adam,
  cloneParams,
  cosineSchedule,
  disposeOptimizerState,
  disposeParams,
  mergeParams,
  type Optimizer,
  type OptimizerState,
  type Params,
  type Rng,
  sgd,
  softmaxCrossEntropy,
} from '@transferlab/core';
import { type Backbone, type LinearHead, linearHead } from '@transferlab/models';
import type { Batch, LoopConfig, TransferMethod } from '../types.js';
import { normalizedTrainStep, trainsBatchNorm } from './batch-norm.js';
import { mergeConfig, requireNonNegative, requireOneOf, requirePositive } from './config.js';

/** Options shared by every method that trains a backbone + linear head with a first-order optimizer. */
export interface OptimConfig extends LoopConfig {
  optimizer: 'adam' | 'sgd';
  lr: number;
  /** SGD momentum (ignored by Adam). */
  momentum: number;
  weightDecay: number;
  schedule: 'constant' | 'cosine';
}

export function validateOptimConfig(methodId: string, c: OptimConfig): void {
  requirePositive(methodId, 'epochs', c.epochs, true);
  requirePositive(methodId, 'batchSize', c.batchSize, true);
  requirePositive(methodId, 'lr', c.lr);
  requireNonNegative(methodId, 'weightDecay', c.weightDecay);
  requireOneOf(methodId, 'optimizer', c.optimizer, ['adam', 'sgd'] as const);
  requireOneOf(methodId, 'schedule', c.schedule, ['constant', 'cosine'] as const);
  if (!(c.momentum >= 0 && c.momentum < 1))
    throw new Error(`method "${methodId}": momentum must be in [0, 1), got ${c.momentum}`);
}

export function createOptimizer(c: OptimConfig, lrScale?: (name: string) => number): Optimizer {
  const common = { lr: c.lr, weightDecay: c.weightDecay, ...(lrScale ? { lrScale } : {}) };
  return c.optimizer === 'adam' ? adam(common) : sgd({ ...common, momentum: c.momentum });
}

export function scheduleFactor(c: OptimConfig, step: number, totalSteps: number): number {
  return c.schedule === 'cosine' ? cosineSchedule(step, totalSteps) : 1;
}

/** A backbone with a linear head, its weights, and its optimizer state. */
export interface ClassifierState {
  readonly backbone: Backbone;
  readonly head: LinearHead;
  readonly config: OptimConfig;
  readonly optimizer: Optimizer;
  readonly trainable: readonly string[];
  readonly totalSteps: number;
  /** Steps run the backbone in training mode (batch-statistics BatchNormalization) and carry its running statistics. */
  readonly trainBatchNorm: boolean;
  params: Params;
  optState: OptimizerState;
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
  const params = mergeParams(args.backboneParams, headParams);
  const isHead = (name: string) => head.paramNames.includes(name);
  const statistics = new Set(args.backbone.nonTrainable ?? []);
  const trainable = Object.keys(params).filter(
    (n) => !statistics.has(n) && (isHead(n) || args.backboneLrMultiplier > 0),
  );
  const optimizer = createOptimizer(args.config, (n) =>
    isHead(n) ? 1 : args.backboneLrMultiplier,
  );
  return {
    backbone: args.backbone,
    head,
    config: args.config,
    optimizer,
    trainable,
    totalSteps: args.totalSteps,
    trainBatchNorm: trainsBatchNorm(args.backbone, args.backboneLrMultiplier, args.freezeBatchNorm),
    params,
    optState: optimizer.init(Object.fromEntries(trainable.map((n) => [n, params[n] as tf.Tensor]))),
  };
}

export function classifierLogits(state: ClassifierState, params: Params, x: tf.Tensor): tf.Tensor {
  return state.head.apply(params, state.backbone.apply(params, x).features);
}

export function classifierStep(
  state: ClassifierState,
  batch: Batch,
  step: number,
): { state: ClassifierState; loss: number } {
  const result = normalizedTrainStep(
    state,
    scheduleFactor(state.config, step, state.totalSteps),
    (p, norm) => softmaxCrossEntropy(state.head.apply(p, norm.apply(p, batch.x).features), batch.y),
  );
  return { state: { ...state, params: result.params, optState: result.state }, loss: result.loss };
}

export function disposeClassifier(state: ClassifierState): void {
  disposeParams(state.params);
  disposeOptimizerState(state.optState);
}

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
