import * as tf from '@tensorflow/tfjs-core';
import {
  type Optimizer,
  type OptimizerState,
  type Params,
  pickParams,
  softmaxCrossEntropy,
  valueAndGrads,
} from '@transferlab/core';
import {
  type LinearHead,
  layerParamShapes,
  outputShape,
  type SpecBackbone,
} from '@transferlab/models';
import { matchingLoss, type TapPair } from '../shared/feature-transfer.js';
import { metaOutputs, type WhereActivation } from './meta-nets.js';
import { safeBackboneApply, safeSoftmaxCrossEntropy, stopGradient } from './safe-ops.js';

/**
 * `exact`: the meta-gradient differentiates through the look-ahead updates,
 * Hessian terms included (the reference code's `meta_backward`).
 * `first-order`: the target weights are treated as constants inside each
 * look-ahead gradient (no Hessian-vector products through them); the
 * meta-parameters still reach the look-ahead weights through ∂g/∂φ, the
 * mixed derivative of the matching loss, and the updates stay
 * momentum- and weight-decay-aware.
 */
export type MetaGradientMode = 'exact' | 'first-order';

/** Everything the look-ahead needs besides the meta-parameters; none of it is differentiated. */
export interface LookaheadProblem {
  readonly target: SpecBackbone;
  readonly head: LinearHead;
  readonly pairs: readonly TapPair[];
  readonly optimizer: Optimizer;
  /** Target weights after this minibatch's real step (θ₀ of the look-ahead). */
  readonly params: Params;
  readonly optState: OptimizerState;
  readonly lrFactor: number;
  readonly x: tf.Tensor;
  readonly y: tf.Tensor;
  /** Per pair: the source map at the target tap's size. */
  readonly sourceMaps: readonly tf.Tensor4D[];
  /** Per source tap: the globally average-pooled source map, the meta-nets' input. */
  readonly pooled: Readonly<Record<string, tf.Tensor2D>>;
  readonly beta: number;
  /** T: matching-only look-ahead steps before the one cross-entropy step. */
  readonly steps: number;
  readonly activation: WhereActivation;
  readonly mode: MetaGradientMode;
}

/** Names of the target parameters each look-ahead loss reaches (the others get zero gradients: momentum and weight decay still apply, as in PyTorch). */
export function lookaheadParamNames(
  target: SpecBackbone,
  head: LinearHead,
  pairs: readonly TapPair[],
): { matching: string[]; crossEntropy: string[]; deepestTap: string } {
  const layers = target.spec.layers;
  const tapped = new Set(pairs.map((p) => p.target));
  let deepest = -1;
  layers.forEach((l, i) => {
    if (tapped.has(l.name)) deepest = i;
  });
  // Which layer owns each parameter (a residual block owns `<block>.conv1.weight`, …).
  const owner = new Map<string, number>();
  let shape: number[] = [...target.spec.inputShape];
  layers.forEach((layer, i) => {
    for (const n of Object.keys(layerParamShapes(layer, shape))) owner.set(n, i);
    shape = outputShape(layer, shape);
  });
  const statistics = new Set(target.nonTrainable ?? []);
  const paramsOf = (upTo: number) =>
    Object.keys(target.paramShapes).filter(
      (n) => !statistics.has(n) && (owner.get(n) ?? Number.POSITIVE_INFINITY) <= upTo,
    );
  const connectors = pairs.flatMap((p) => [
    `connector.${p.index}.weight`,
    `connector.${p.index}.bias`,
  ]);
  return {
    matching: [...paramsOf(deepest), ...connectors],
    crossEntropy: [...paramsOf(layers.length), ...head.paramNames],
    deepestTap: layers[deepest]?.name ?? '',
  };
}

/** Gradients of `loss` for every parameter (zeros for those outside `names`); in first-order mode the weights are constants inside. */
function lookaheadGrads(
  loss: (p: Params) => tf.Scalar,
  params: Params,
  names: readonly string[],
  mode: MetaGradientMode,
): Params {
  const inner =
    mode === 'exact'
      ? params
      : Object.fromEntries(
          Object.entries(params).map(([n, t]) => [n, names.includes(n) ? stopGradient(t) : t]),
        );
  const { grads } = valueAndGrads(loss, inner, names);
  const out: Record<string, tf.Tensor> = {};
  for (const [n, t] of Object.entries(params)) out[n] = grads[n] ?? tf.zerosLike(t);
  return out;
}

/**
 * The meta-objective as a function of the meta-parameters φ: from the
 * target weights θ₀ (after the real step), T look-ahead steps of the target
 * optimizer on the matching loss (channel weights and λ from φ), one on the
 * target cross-entropy, then the cross-entropy at the resulting weights on
 * the same minibatch. Every look-ahead gradient runs on second-order-safe
 * ops, so differentiating this in φ is exact. Nothing here is kept: the
 * look-ahead weights are discarded by the caller's tidy.
 */
export function lookaheadLoss(meta: Params, problem: LookaheadProblem): tf.Scalar {
  const { target, head, pairs, optimizer, x, y } = problem;
  const names = lookaheadParamNames(target, head, pairs);
  const { weights, lambdas } = metaOutputs(meta, pairs, problem.pooled, problem.activation);
  const targetTaps = [...new Set(pairs.map((p) => p.target))];
  // A batch-normalised target runs in training mode (batch moments), as in the
  // real step; its running statistics are constants the look-ahead never updates.
  const statistics = new Set(target.nonTrainable ?? []);
  const training = statistics.size > 0;
  const constants = pickParams(problem.params, (n) => statistics.has(n));
  const full = (q: Params): Params => (training ? { ...q, ...constants } : q);
  let params = training ? pickParams(problem.params, (n) => !statistics.has(n)) : problem.params;
  let state = problem.optState;
  for (let t = 0; t < problem.steps; t++) {
    const grads = lookaheadGrads(
      (q) =>
        matchingLoss({
          pairs,
          params: q,
          targetTaps: safeBackboneApply(target.spec, full(q), x, {
            taps: targetTaps,
            stopAfter: names.deepestTap,
            training,
          }).taps,
          sourceMaps: problem.sourceMaps,
          weights,
          lambdas,
          beta: problem.beta,
        }),
      params,
      names.matching,
      problem.mode,
    );
    ({ params, state } = optimizer.update(params, grads, state, problem.lrFactor));
  }
  const ceGrads = lookaheadGrads(
    (q) =>
      safeSoftmaxCrossEntropy(
        head.apply(q, safeBackboneApply(target.spec, full(q), x, { training }).features),
        y,
      ),
    params,
    names.crossEntropy,
    problem.mode,
  );
  ({ params } = optimizer.update(params, ceGrads, state, problem.lrFactor));
  // Differentiated once (in θ), so the ordinary ops are fine here.
  return softmaxCrossEntropy(
    head.apply(params, target.apply(full(params), x, { training }).features),
    y,
  );
}

/** The meta-objective's value and its gradient in every meta-parameter. */
export function metaGradient(
  meta: Params,
  problem: LookaheadProblem,
): { value: tf.Scalar; grads: Params } {
  return valueAndGrads((m) => lookaheadLoss(m, problem), meta);
}
