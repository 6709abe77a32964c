import * as tf from '@tensorflow/tfjs-core';
import type { Optimizer, OptimizerState } from './optimizers.js';
import { disposeReplaced, type Params, pickParams } from './params.js';

export class DivergenceError extends Error {
  constructor(
    readonly step: number,
    readonly loss: number,
  ) {
    super(`training diverged at step ${step}: loss is ${loss}`);
    this.name = 'DivergenceError';
  }
}

/** Loss value and gradients with respect to the named params (all by default). */
export function valueAndGrads(
  loss: (params: Params) => tf.Scalar,
  params: Params,
  trainable: readonly string[] = Object.keys(params),
): { value: tf.Scalar; grads: Params } {
  const names = [...trainable];
  const fixed = pickParams(params, (n) => !names.includes(n));
  const xs = names.map((n) => {
    const t = params[n];
    if (!t) throw new Error(`valueAndGrads: unknown trainable parameter "${n}"`);
    return t;
  });
  const f = (...ts: tf.Tensor[]) => {
    const p: Record<string, tf.Tensor> = { ...fixed };
    names.forEach((n, i) => {
      p[n] = ts[i] as tf.Tensor;
    });
    return loss(p);
  };
  const { value, grads } = tf.valueAndGrads(f)(xs);
  const out: Record<string, tf.Tensor> = {};
  names.forEach((n, i) => {
    out[n] = grads[i] as tf.Tensor;
  });
  return { value, grads: out };
}

export interface TrainStepResult {
  params: Params;
  state: OptimizerState;
  loss: number;
}

/**
 * One optimisation step inside `tf.tidy`: gradients of `loss` over the
 * trainable params, the optimizer's update, and disposal of the replaced
 * tensors. It takes ownership of `params` and `state`: the caller must use
 * the returned ones and not touch the old ones again. A non-finite loss
 * throws `DivergenceError` (with params and state left intact for disposal).
 */
export function trainStep(args: {
  params: Params;
  state: OptimizerState;
  optimizer: Optimizer;
  loss: (params: Params) => tf.Scalar;
  trainable?: readonly string[];
  lrFactor?: number;
}): TrainStepResult {
  const { params, state, optimizer } = args;
  let lossValue = Number.NaN as number;
  let next = undefined as { params: Params; state: OptimizerState } | undefined;
  tf.tidy(() => {
    const { value, grads } = valueAndGrads(args.loss, params, args.trainable);
    lossValue = value.dataSync()[0] as number;
    if (!Number.isFinite(lossValue)) return;
    next = optimizer.update(params, grads, state, args.lrFactor ?? 1);
    for (const t of Object.values(next.params)) tf.keep(t);
    for (const t of Object.values(next.state.slots)) tf.keep(t);
  });
  if (!next) throw new DivergenceError(state.step, lossValue);
  disposeReplaced(params, next.params);
  disposeReplaced(state.slots, next.state.slots);
  return { params: next.params, state: next.state, loss: lossValue };
}

/** Cosine decay from 1 to `floor` over `totalSteps` (a factor for `lrFactor`). */
export function cosineSchedule(step: number, totalSteps: number, floor = 0): number {
  if (totalSteps <= 0) return 1;
  const t = Math.min(1, step / totalSteps);
  return floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * t));
}
