import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend.js';
import { adam, sgd } from './optimizers.js';
import type { Params } from './params.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

const values = (p: Params, n: string) => Array.from((p[n] as tf.Tensor).dataSync());

describe('sgd', () => {
  it('applies momentum and coupled weight decay like PyTorch', () => {
    const opt = sgd({ lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
    let params: Params = { w: tf.tensor1d([1, -2]) };
    let state = opt.init(params);
    const g = { w: tf.tensor1d([0.5, 0.25]) };
    // by hand: d = g + wd·p; v = μv + d; p -= lr·v
    let p = [1, -2];
    let v = [0, 0];
    for (let step = 0; step < 3; step++) {
      ({ params, state } = opt.update(params, g, state));
      const d = p.map((pi, i) => [0.5, 0.25][i]! + 0.01 * pi);
      v = v.map((vi, i) => 0.9 * vi + d[i]!);
      p = p.map((pi, i) => pi - 0.1 * v[i]!);
    }
    const got = values(params, 'w');
    expect(got[0]).toBeCloseTo(p[0]!, 6);
    expect(got[1]).toBeCloseTo(p[1]!, 6);
    expect(state.step).toBe(3);
  });

  it('lrScale 0 freezes a parameter; unknown gradients are an error', () => {
    const opt = sgd({ lr: 1, lrScale: (n) => (n === 'frozen' ? 0 : 1) });
    const params = { frozen: tf.scalar(1), free: tf.scalar(1) };
    const out = opt.update(params, { frozen: tf.scalar(1), free: tf.scalar(1) }, opt.init(params));
    expect(values(out.params, 'frozen')).toEqual([1]);
    expect(values(out.params, 'free')).toEqual([0]);
    expect(() => opt.update(params, { nope: tf.scalar(1) }, opt.init(params))).toThrow(
      /unknown parameter "nope"/,
    );
  });

  it('rejects bad hyper-parameters', () => {
    expect(() => sgd({ lr: -1 })).toThrow(/lr must be a positive/);
    expect(() => sgd({ lr: 0.1, momentum: 1 })).toThrow(/momentum/);
  });
});

describe('adam', () => {
  it('matches tfjs’ own AdamOptimizer on a quadratic over 20 steps', () => {
    const target = tf.tensor1d([3, -1, 0.5]);
    const loss = (w: tf.Tensor) => tf.sum(tf.square(tf.sub(w, target))) as tf.Scalar;
    const opt = adam({ lr: 0.05 });
    let params: Params = { w: tf.tensor1d([0, 0, 0]) };
    let state = opt.init(params);
    const ref = tf.variable(tf.tensor1d([0, 0, 0]));
    const refOpt = tf.train.adam(0.05, 0.9, 0.999, 1e-8);
    for (let i = 0; i < 20; i++) {
      const grads = { w: tf.grad(loss)(params.w as tf.Tensor) };
      ({ params, state } = opt.update(params, grads, state));
      refOpt.minimize(() => loss(ref));
    }
    const got = values(params, 'w');
    const want = Array.from(ref.dataSync());
    // float32 with a different operation order: agree to ~1e-5, far below a missing bias correction (~0.1)
    for (let i = 0; i < 3; i++) expect(got[i]).toBeCloseTo(want[i]!, 4);
    // and it moved toward the target
    expect(got[0]).toBeGreaterThan(0.5);
  });

  it('first step has magnitude lr in every coordinate (bias correction)', () => {
    const opt = adam({ lr: 0.01 });
    const params = { w: tf.tensor1d([0, 0]) };
    const out = opt.update(params, { w: tf.tensor1d([1e-3, -50]) }, opt.init(params));
    const got = values(out.params, 'w');
    expect(got[0]).toBeCloseTo(-0.01, 6);
    expect(got[1]).toBeCloseTo(0.01, 6);
  });

  it('decoupled weight decay shrinks weights with zero gradient by lr·wd', () => {
    const opt = adam({ lr: 0.1, weightDecay: 0.5, decoupled: true });
    const params = { w: tf.tensor1d([2]) };
    const out = opt.update(params, { w: tf.tensor1d([0]) }, opt.init(params));
    expect(values(out.params, 'w')[0]).toBeCloseTo(2 - 0.1 * 0.5 * 2, 6);
  });
});
