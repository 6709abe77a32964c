import * as tf from '@tensorflow/tfjs-core';
import type { Params } from './params.js';

/**
 * Functional optimizers: an update rule is a pure function from
 * (params, grads, state) to new (params, state). Nothing is mutated, so the
 * same rule serves ordinary training and differentiable look-ahead steps in
 * meta-learning, and copies of state are free.
 */
export interface OptimizerState {
  /** Slot tensors (momentum buffers, Adam moments), keyed `${slot}:${param}`. */
  readonly slots: Params;
  /** Number of updates applied so far. */
  readonly step: number;
}

export interface Optimizer {
  readonly name: string;
  init(params: Params): OptimizerState;
  /**
   * Apply one update to every parameter that has a gradient in `grads`; the
   * others are passed through unchanged. `lrFactor` scales the learning rate
   * (schedules). Returns new tensors; disposes nothing.
   */
  update(
    params: Params,
    grads: Params,
    state: OptimizerState,
    lrFactor?: number,
  ): { params: Params; state: OptimizerState };
}

export interface SgdConfig {
  lr: number;
  momentum?: number;
  /** L2 penalty added to the gradient (PyTorch's coupled weight decay). */
  weightDecay?: number;
  nesterov?: boolean;
  /** Per-parameter learning-rate multiplier, e.g. a smaller rate for a pretrained backbone. 0 freezes. */
  lrScale?: (name: string) => number;
}

export interface AdamConfig {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Decoupled weight decay (AdamW) instead of an L2 term in the gradient. */
  decoupled?: boolean;
  lrScale?: (name: string) => number;
}

function checkLr(name: string, lr: number): void {
  if (!(lr > 0) || !Number.isFinite(lr))
    throw new Error(`${name}: lr must be a positive number, got ${lr}`);
}

/** SGD with momentum and weight decay, with PyTorch's update convention. */
export function sgd(config: SgdConfig): Optimizer {
  checkLr('sgd', config.lr);
  const momentum = config.momentum ?? 0;
  const wd = config.weightDecay ?? 0;
  const nesterov = config.nesterov ?? false;
  if (momentum < 0 || momentum >= 1)
    throw new Error(`sgd: momentum must be in [0, 1), got ${momentum}`);
  if (wd < 0) throw new Error(`sgd: weightDecay must be ≥ 0, got ${wd}`);
  return {
    name: 'sgd',
    init(params) {
      const slots: Record<string, tf.Tensor> = {};
      if (momentum > 0)
        for (const [n, p] of Object.entries(params)) slots[`v:${n}`] = tf.zerosLike(p);
      return { slots, step: 0 };
    },
    update(params, grads, state, lrFactor = 1) {
      const next: Record<string, tf.Tensor> = { ...params };
      const slots: Record<string, tf.Tensor> = { ...state.slots };
      for (const [n, g0] of Object.entries(grads)) {
        const p = params[n];
        if (!p) throw new Error(`sgd: gradient for unknown parameter "${n}"`);
        const scale = config.lrScale ? config.lrScale(n) : 1;
        if (scale === 0) continue;
        const lr = config.lr * lrFactor * scale;
        let g = wd > 0 ? tf.add(g0, tf.mul(p, wd)) : g0;
        if (momentum > 0) {
          const v0 = state.slots[`v:${n}`];
          // Lazily created so that params added after init (a new head) work.
          const v = v0 ? tf.add(tf.mul(v0, momentum), g) : g;
          slots[`v:${n}`] = v;
          g = nesterov ? tf.add(g, tf.mul(v, momentum)) : v;
        }
        next[n] = tf.sub(p, tf.mul(g, lr));
      }
      return { params: next, state: { slots, step: state.step + 1 } };
    },
  };
}

/** Adam (Kingma & Ba) with bias correction; `decoupled` gives AdamW. */
export function adam(config: AdamConfig): Optimizer {
  checkLr('adam', config.lr);
  const b1 = config.beta1 ?? 0.9;
  const b2 = config.beta2 ?? 0.999;
  const eps = config.eps ?? 1e-8;
  const wd = config.weightDecay ?? 0;
  if (wd < 0) throw new Error(`adam: weightDecay must be ≥ 0, got ${wd}`);
  return {
    name: config.decoupled ? 'adamw' : 'adam',
    init(params) {
      const slots: Record<string, tf.Tensor> = {};
      for (const [n, p] of Object.entries(params)) {
        slots[`m:${n}`] = tf.zerosLike(p);
        slots[`v:${n}`] = tf.zerosLike(p);
      }
      return { slots, step: 0 };
    },
    update(params, grads, state, lrFactor = 1) {
      const t = state.step + 1;
      const next: Record<string, tf.Tensor> = { ...params };
      const slots: Record<string, tf.Tensor> = { ...state.slots };
      const c1 = 1 - b1 ** t;
      const c2 = 1 - b2 ** t;
      for (const [n, g0] of Object.entries(grads)) {
        const p = params[n];
        if (!p) throw new Error(`adam: gradient for unknown parameter "${n}"`);
        const scale = config.lrScale ? config.lrScale(n) : 1;
        if (scale === 0) continue;
        const lr = config.lr * lrFactor * scale;
        const g = wd > 0 && !config.decoupled ? tf.add(g0, tf.mul(p, wd)) : g0;
        const m0 = state.slots[`m:${n}`];
        const v0 = state.slots[`v:${n}`];
        const m = m0 ? tf.add(tf.mul(m0, b1), tf.mul(g, 1 - b1)) : tf.mul(g, 1 - b1);
        const v = v0
          ? tf.add(tf.mul(v0, b2), tf.mul(tf.square(g), 1 - b2))
          : tf.mul(tf.square(g), 1 - b2);
        slots[`m:${n}`] = m;
        slots[`v:${n}`] = v;
        const stepDir = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), eps));
        let updated = tf.sub(p, tf.mul(stepDir, lr));
        if (wd > 0 && config.decoupled) updated = tf.sub(updated, tf.mul(p, lr * wd));
        next[n] = updated;
      }
      return { params: next, state: { slots, step: t } };
    },
  };
}

export function disposeOptimizerState(state: OptimizerState | undefined): void {
  if (state) for (const t of Object.values(state.slots)) t.dispose();
}
