import type * as tf from '@tensorflow/tfjs-core';
import {
  disposeOptimizerState,
  disposeParams,
  type Optimizer,
  type OptimizerState,
  type Params,
} from '@transferlab/core';
import type { Backbone } from '@transferlab/models';
import type { StepResult } from '../types.js';
import { type NormSession, normalizedTrainStep, trainsBatchNorm } from './batch-norm.js';
import { createOptimizer, type OptimConfig, scheduleFactor } from './optim.js';

/**
 * What every trainer keeps between steps: the network it trains, its
 * weights and its optimizer. A method's state extends it with what the
 * method adds (heads, a frozen source or teacher, meta-networks) rather than
 * redefining these fields.
 */
export interface TrainedModel<C extends OptimConfig = OptimConfig> {
  /** The network being trained. */
  readonly backbone: Backbone;
  readonly config: C;
  /** Every trained weight (backbone, heads, extra modules) and the normalisation statistics. Owned by the state. */
  readonly params: Params;
  readonly optimizer: Optimizer;
  readonly optState: OptimizerState;
  /** The names in `params` the optimizer updates. */
  readonly trainable: readonly string[];
  /** Steps the runner takes in all (for the learning-rate schedule). */
  readonly totalSteps: number;
  /** Steps run normalisation in training mode and carry its running statistics (see `trainsBatchNorm`). */
  readonly trainBatchNorm: boolean;
}

/**
 * A trained model over `params` (taken over: the model owns and disposes
 * them). Parameters for which `isHead` holds (heads, connectors: anything
 * outside the backbone) train at the full learning rate, the backbone's at
 * `backboneLrMultiplier` × it (0 freezes them: no gradients are computed).
 * The backbone's `nonTrainable` parameters (normalisation statistics) never
 * get gradients; when the backbone trains and has them, steps run it in
 * training mode unless `freezeBatchNorm`.
 */
export function initTrainedModel<C extends OptimConfig>(args: {
  backbone: Backbone;
  params: Params;
  config: C;
  totalSteps: number;
  isHead: (name: string) => boolean;
  backboneLrMultiplier: number;
  freezeBatchNorm?: boolean;
}): TrainedModel<C> {
  const { backbone, params, isHead, backboneLrMultiplier: multiplier } = args;
  const statistics = new Set(backbone.nonTrainable ?? []);
  const trainable = Object.keys(params).filter(
    (n) => !statistics.has(n) && (isHead(n) || multiplier > 0),
  );
  const optimizer = createOptimizer(args.config, (n) => (isHead(n) ? 1 : multiplier));
  return {
    backbone,
    config: args.config,
    params,
    optimizer,
    optState: optimizer.init(Object.fromEntries(trainable.map((n) => [n, params[n] as tf.Tensor]))),
    trainable,
    totalSteps: args.totalSteps,
    trainBatchNorm: trainsBatchNorm(backbone, multiplier, args.freezeBatchNorm),
  };
}

/** The learning-rate factor of the config's schedule at `step`. */
export function trainedModelLrFactor(model: TrainedModel, step: number): number {
  return scheduleFactor(model.config, step, model.totalSteps);
}

/**
 * One optimizer step of `model` on `loss` at the schedule's learning rate
 * for `step` (core's `trainStep` in a normalisation session: see
 * `normalizedTrainStep`): the model with its new weights and optimizer
 * state, and the loss. Inside `loss`, run every forward pass of the
 * backbone through `norm`.
 */
export function trainedModelStep<M extends TrainedModel>(
  model: M,
  step: number,
  loss: (params: Params, norm: NormSession) => tf.Scalar,
): StepResult<M> {
  const result = normalizedTrainStep(model, trainedModelLrFactor(model, step), loss);
  return { state: { ...model, params: result.params, optState: result.state }, loss: result.loss };
}

/** Frees the model's weights and optimizer state. */
export function disposeTrainedModel(model: TrainedModel): void {
  disposeParams(model.params);
  disposeOptimizerState(model.optState);
}
