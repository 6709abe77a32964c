import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from './backend.js';
import { measureTensorGrowth } from './leak.js';
import { softmaxCrossEntropy } from './losses.js';
import { adam, sgd } from './optimizers.js';
import type { Params } from './params.js';
import { createRng } from './rng.js';
import { cosineSchedule, DivergenceError, trainStep, valueAndGrads } from './train.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

function logisticProblem(seed: number) {
  const rng = createRng(seed);
  const x = tf.tensor2d(rng.normalArray(64 * 5), [64, 5]);
  const y = tf.tensor1d(
    Int32Array.from({ length: 64 }, () => rng.int(3)),
    'int32',
  );
  const params: Params = { w: tf.tensor2d(rng.normalArray(15, 0.1), [5, 3]), b: tf.zeros([3]) };
  const loss = (p: Params) =>
    softmaxCrossEntropy(tf.add(tf.matMul(x, p.w as tf.Tensor2D), p.b as tf.Tensor), y);
  return { x, y, params, loss };
}

describe('softmaxCrossEntropy', () => {
  it('gradient matches central finite differences', () => {
    const { params, loss } = logisticProblem(1);
    const { grads } = valueAndGrads(loss, params);
    const w = Array.from((params.w as tf.Tensor).dataSync());
    const g = Array.from((grads.w as tf.Tensor).dataSync());
    const h = 1e-2;
    for (const i of [0, 4, 11, 14]) {
      const plus = [...w];
      const minus = [...w];
      plus[i]! += h;
      minus[i]! -= h;
      const f = (vals: number[]) =>
        loss({ ...params, w: tf.tensor2d(vals, [5, 3]) }).dataSync()[0] as number;
      const fd = (f(plus) - f(minus)) / (2 * h);
      expect(Math.abs(fd - g[i]!)).toBeLessThan(2e-4);
    }
  });
});

describe('trainStep', () => {
  it('decreases the loss and leaks no tensors', () => {
    const prob = logisticProblem(2);
    const opt = adam({ lr: 0.05 });
    let params = prob.params;
    let state = opt.init(params);
    const first = prob.loss(params).dataSync()[0] as number;
    const growth = measureTensorGrowth(
      () => {
        ({ params, state } = trainStep({ params, state, optimizer: opt, loss: prob.loss }));
      },
      { warmup: 2, steps: 20 },
    );
    expect(growth.grew).toBe(false);
    const last = prob.loss(params).dataSync()[0] as number;
    expect(last).toBeLessThan(first - 0.05);
  });

  it('only trains the named parameters', () => {
    const prob = logisticProblem(3);
    const before = Array.from((prob.params.b as tf.Tensor).dataSync());
    const opt = sgd({ lr: 0.5 });
    const out = trainStep({
      params: prob.params,
      state: opt.init(prob.params),
      optimizer: opt,
      loss: prob.loss,
      trainable: ['w'],
    });
    expect(Array.from((out.params.b as tf.Tensor).dataSync())).toEqual(before);
    expect(out.params.b).toBe(prob.params.b);
  });

  it('throws DivergenceError on a non-finite loss', () => {
    const params = { w: tf.scalar(1) };
    const opt = sgd({ lr: 0.1 });
    expect(() =>
      trainStep({
        params,
        state: opt.init(params),
        optimizer: opt,
        loss: (p) => tf.div(p.w as tf.Tensor, 0) as tf.Scalar,
      }),
    ).toThrow(DivergenceError);
  });

  it('same seed → identical weights after training', () => {
    const run = () => {
      const prob = logisticProblem(11);
      const opt = adam({ lr: 0.01 });
      let params = prob.params;
      let state = opt.init(params);
      for (let i = 0; i < 5; i++)
        ({ params, state } = trainStep({ params, state, optimizer: opt, loss: prob.loss }));
      return Array.from((params.w as tf.Tensor).dataSync());
    };
    expect(run()).toEqual(run());
  });
});

describe('cosineSchedule', () => {
  it('goes from 1 to the floor', () => {
    expect(cosineSchedule(0, 100)).toBe(1);
    expect(cosineSchedule(50, 100)).toBeCloseTo(0.5, 10);
    expect(cosineSchedule(100, 100, 0.1)).toBeCloseTo(0.1, 10);
  });
});
