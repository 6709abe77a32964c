import type * as tf from '@tensorflow/tfjs-core';
import { cloneParams, mergeParams, type Params, type Rng } from '@transferlab/core';
import { type Backbone, type LinearHead, linearHead } from '@transferlab/models';
import {
  type Batch,
  type Engine,
  type MethodContext,
  type StepResult,
  TRANSFER_METHOD_SPECIFICATION_VERSION,
  type TransferMethod,
} from '../types.js';
import { mergeConfig } from './config.js';
import type { LossFn, LossOps, StepValueSpec, StepValues } from './loss-ops.js';
import { type OptimConfig, validateOptimConfig } from './optim.js';
import { createNetworkTrainer, type NetworkTrainer } from './trainer.js';

/** A backbone with a linear head, trained on either engine. */
export interface ClassifierState {
  readonly backbone: Backbone;
  readonly head: LinearHead;
  readonly trainer: NetworkTrainer;
  /** The step values a penalty reads, computed before each step (`Penalty.stepValues`). */
  readonly stepValues?: Penalty['stepValues'];
}

/**
 * Regularisation terms, once for both engines; `features` are the trained
 * network's features of the target batch, the very pass the cross-entropy
 * reads (a second pass would cost a forward and chain normalisation
 * statistics twice).
 */
export type PenaltyFn = <T>(ops: LossOps<T>, features: T) => T;

/** Terms added to the classifier's cross-entropy, with the step values they read. */
export interface Penalty {
  readonly terms: PenaltyFn;
  /** The step values `terms` reads (`ops.value(name)`), declared for the engine's compiler. */
  readonly values?: Readonly<Record<string, StepValueSpec>>;
  /** Their values for one step, computed on the host before it (may read the trainer's current features). */
  readonly stepValues?: (trainer: NetworkTrainer, batch: Batch) => StepValues | Promise<StepValues>;
}

/** The classifier's loss, once for both engines: cross-entropy of the head on the backbone's features. */
export function classifierLoss(head: LinearHead): LossFn {
  return (ops) => ops.crossEntropy(ops.linear(ops.features(ops.target.x), head), ops.target.y);
}

/**
 * A classifier from backbone weights (taken over: the state owns and
 * disposes them) and a fresh head, on `engine` (default tfjs).
 * `backboneLrMultiplier` scales the backbone's learning rate; 0 freezes it
 * (no gradients are computed for it). The backbone's `nonTrainable`
 * parameters (BatchNormalization statistics) never get gradients. When the
 * backbone trains and has such statistics, steps run it in training mode —
 * batch statistics, running averages carried from step to step, as
 * PyTorch's `model.train()` — unless `freezeBatchNorm` (then BN stays in
 * inference mode with the stored statistics).
 */
export async function initClassifier(args: {
  backbone: Backbone;
  backboneParams: Params;
  numClasses: number;
  config: OptimConfig;
  backboneLrMultiplier: number;
  rng: Rng;
  totalSteps: number;
  headPrefix?: string;
  freezeBatchNorm?: boolean;
  engine?: Engine;
  /** onnxruntime intra-op threads (default 1). */
  threads?: number;
  /** Terms added to the cross-entropy (a regulariser); `penalty.start` is the frozen network it may read. */
  penalty?: { terms: (head: LinearHead) => PenaltyFn | Penalty; start: Params };
}): Promise<ClassifierState> {
  const head = linearHead(args.backbone.featureDim, args.numClasses, args.headPrefix ?? 'head');
  const ce = classifierLoss(head);
  const penalty = args.penalty ? asPenalty(args.penalty.terms(head)) : undefined;
  const extra = penalty?.terms;
  const loss: LossFn = extra
    ? (ops) => {
        const f = ops.features(ops.target.x);
        return ops.add(ops.crossEntropy(ops.linear(f, head), ops.target.y), extra(ops, f));
      }
    : ce;
  const headParams = head.init(args.rng.derive('head'));
  const trainer = await createNetworkTrainer({
    engine: args.engine ?? 'tfjs',
    backbone: args.backbone,
    params: mergeParams(args.backboneParams, headParams),
    isHead: (name) => head.paramNames.includes(name),
    config: args.config,
    totalSteps: args.totalSteps,
    backboneLrMultiplier: args.backboneLrMultiplier,
    ...(args.freezeBatchNorm !== undefined ? { freezeBatchNorm: args.freezeBatchNorm } : {}),
    loss,
    ...(args.penalty ? { frozen: args.penalty.start } : {}),
    ...(penalty?.values ? { values: penalty.values } : {}),
    ...(args.threads ? { intraOpNumThreads: args.threads } : {}),
  });
  return {
    backbone: args.backbone,
    head,
    trainer,
    ...(penalty?.stepValues ? { stepValues: penalty.stepValues } : {}),
  };
}

const asPenalty = (p: PenaltyFn | Penalty): Penalty => (typeof p === 'function' ? { terms: p } : p);

export function classifierLogits(state: ClassifierState, params: Params, x: tf.Tensor): tf.Tensor {
  return state.head.apply(params, state.backbone.apply(params, x).features);
}

export async function classifierStep(
  state: ClassifierState,
  batch: Batch,
  step: number,
): Promise<StepResult<ClassifierState>> {
  const values = state.stepValues ? await state.stepValues(state.trainer, batch) : undefined;
  return { state, loss: await state.trainer.step({ target: batch, step }, values) };
}

export function disposeClassifier(state: ClassifierState): Promise<void> {
  return state.trainer.dispose();
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
  /**
   * Terms added to the cross-entropy: a regulariser (L2-SP, DELTA, BSS). It
   * may read the backbone's starting weights as the frozen network
   * (`ops.param(name, 'frozen')`, `ops.features(x, 'frozen')`) and step
   * values (`Penalty`); it is built once at `init`, where it may read the
   * context (DELTA's attention comes from the target training set).
   */
  penalty?: (
    config: C,
    head: LinearHead,
    backbone: Backbone,
    ctx: MethodContext<C>,
  ) => PenaltyFn | Penalty | Promise<PenaltyFn | Penalty>;
  reference?: TransferMethod<C, ClassifierState>['reference'];
}): TransferMethod<C, ClassifierState> {
  return {
    specificationVersion: TRANSFER_METHOD_SPECIFICATION_VERSION,
    id: spec.id,
    title: spec.title,
    description: spec.description,
    ...(spec.reference ? { reference: spec.reference } : {}),
    defaults: spec.defaults,
    needs: { pretrainedBackbone: spec.start === 'pretrained', sourceBatches: false },
    engines: ['onnxruntime', 'tfjs'],
    validate(options) {
      const config = mergeConfig<C>(spec.id, spec.defaults, options);
      validateOptimConfig(spec.id, config);
      spec.check?.(config);
      return config;
    },
    async init(ctx) {
      if (spec.start === 'pretrained' && !ctx.pretrained)
        throw new Error(`${spec.id} needs a pretrained backbone`);
      // The classifier's head, named as initClassifier names it, for a penalty built before it.
      const head = linearHead(ctx.backbone.featureDim, ctx.numClasses, 'head');
      const terms = spec.penalty
        ? await spec.penalty(ctx.config, head, ctx.backbone, ctx)
        : undefined;
      // The runner owns the pretrained weights: train a copy.
      const backboneParams =
        ctx.pretrained && spec.start === 'pretrained'
          ? cloneParams(ctx.pretrained)
          : ctx.backbone.init(ctx.rng.derive('backbone'));
      return initClassifier({
        backbone: ctx.backbone,
        backboneParams,
        ...(terms ? { penalty: { terms: () => terms, start: cloneParams(backboneParams) } } : {}),
        numClasses: ctx.numClasses,
        config: ctx.config,
        backboneLrMultiplier: spec.backboneLrMultiplier(ctx.config),
        rng: ctx.rng,
        totalSteps: ctx.totalSteps,
        freezeBatchNorm: spec.freezeBatchNorm?.(ctx.config) ?? false,
        ...(ctx.engine ? { engine: ctx.engine } : {}),
        ...(ctx.threads ? { threads: ctx.threads } : {}),
      });
    },
    trainStep: (state, input) => classifierStep(state, input.target, input.step),
    predictParams: (state) => state.trainer.params(),
    predict: classifierLogits,
    dispose: disposeClassifier,
  };
}
