import * as tf from '@tensorflow/tfjs-core';
import { cloneParams, mergeParams, type Params, type Rng } from '@transferlab/core';
import { type Backbone, type LinearHead, linearHead } from '@transferlab/models';
import type { MethodContext, StepResult } from '../types.js';
import type { NormSession } from './batch-norm.js';
import type { OptimConfig } from './optim.js';
import {
  disposeTrainedModel,
  initTrainedModel,
  type TrainedModel,
  trainedModelStep,
} from './trained-model.js';

/**
 * One backbone with several named linear heads (a target head, a source
 * head, …), trained together by one optimizer: what joint training and
 * MeRLin share. The head with prefix `head` is the target classifier that
 * `predict` uses, named like the one in `initClassifier` so checkpoints and
 * best-val snapshots look the same across methods.
 */
export interface MultiHeadState<C extends OptimConfig = OptimConfig> extends TrainedModel<C> {
  readonly heads: Readonly<Record<string, LinearHead>>;
}

export const TARGET_HEAD = 'head';
export const SOURCE_HEAD = 'source_head';

/**
 * Backbone weights (taken over: the state owns and disposes them) plus a
 * fresh linear head per entry of `heads`, each initialised from
 * `rng.derive(prefix)` — so the target head starts exactly where
 * `initClassifier`'s does for the same rng. Heads train at the full learning
 * rate, the backbone at `backboneLrMultiplier` × it (0 freezes it and skips
 * its gradients). Normalisation statistics are never trained by the
 * optimizer; when the backbone trains, steps run its normalisation in
 * training mode (see `normSession`), as fine-tuning does.
 */
export function initMultiHead<C extends OptimConfig>(args: {
  backbone: Backbone;
  backboneParams: Params;
  heads: readonly { prefix: string; numClasses: number }[];
  config: C;
  backboneLrMultiplier: number;
  rng: Rng;
  totalSteps: number;
}): MultiHeadState<C> {
  const heads: Record<string, LinearHead> = {};
  const headParams: Params[] = [];
  for (const { prefix, numClasses } of args.heads) {
    const head = linearHead(args.backbone.featureDim, numClasses, prefix);
    heads[prefix] = head;
    headParams.push(head.init(args.rng.derive(prefix)));
  }
  const headNames = new Set(Object.values(heads).flatMap((h) => h.paramNames));
  const model = initTrainedModel({
    backbone: args.backbone,
    params: mergeParams(args.backboneParams, ...headParams),
    config: args.config,
    totalSteps: args.totalSteps,
    isHead: (name) => headNames.has(name),
    backboneLrMultiplier: args.backboneLrMultiplier,
  });
  return { ...model, heads };
}

/**
 * Backbone features flattened to [N, featureDim]; inside a step pass the
 * step's `norm` session so normalisation runs in training mode.
 */
export function features(
  state: MultiHeadState,
  params: Params,
  x: tf.Tensor,
  norm?: NormSession,
): tf.Tensor2D {
  const f = (norm ? norm.apply(params, x) : state.backbone.apply(params, x)).features;
  return (f.rank === 2 ? f : tf.reshape(f, [f.shape[0] as number, -1])) as tf.Tensor2D;
}

export function headLogits(
  state: MultiHeadState,
  params: Params,
  prefix: string,
  feats: tf.Tensor,
): tf.Tensor {
  const head = state.heads[prefix];
  if (!head) {
    throw new Error(
      `no head "${prefix}"; heads: ${Object.keys(state.heads).join(', ') || '(none)'}`,
    );
  }
  return head.apply(params, feats);
}

/** Target logits from the `head` head: what `predict` returns. */
export function targetLogits(
  state: MultiHeadState,
  params: Params,
  x: tf.Tensor,
  norm?: NormSession,
): tf.Tensor {
  return headLogits(state, params, TARGET_HEAD, features(state, params, x, norm));
}

/**
 * One optimizer step on `loss` (core's `trainStep`: tidy, update, disposal of
 * replaced tensors). The loss gets the step's normalisation session: pass it
 * to `features` / `targetLogits` for every forward pass of the step.
 */
export function multiHeadStep<C extends OptimConfig>(
  state: MultiHeadState<C>,
  step: number,
  loss: (params: Params, norm: NormSession) => tf.Scalar,
): StepResult<MultiHeadState<C>> {
  return trainedModelStep(state, step, loss);
}

export const disposeMultiHead: (state: MultiHeadState) => void = disposeTrainedModel;

/** The backbone from the context: a copy of the pretrained weights or a fresh random init. */
export function initialBackbone(
  id: string,
  ctx: MethodContext<{ fromPretrained: boolean }>,
): Params {
  if (!ctx.config.fromPretrained) return ctx.backbone.init(ctx.rng.derive('backbone'));
  if (!ctx.pretrained) {
    throw new Error(
      `method "${id}": fromPretrained is true but no pretrained backbone was given (set fromPretrained: false to start from a random backbone)`,
    );
  }
  return cloneParams(ctx.pretrained);
}

export function requireSourceClasses(id: string, ctx: MethodContext<unknown>): number {
  const c = ctx.sourceNumClasses;
  if (c === undefined || !(c > 1)) {
    throw new Error(
      `method "${id}": needs the source task's number of classes (sourceNumClasses) for its source head, got ${c}`,
    );
  }
  return c;
}
