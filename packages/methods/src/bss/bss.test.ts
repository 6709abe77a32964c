import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, softmaxCrossEntropy } from '@transferlab/core';
import { liveSessionCount } from '@transferlab/graph';
import { createBackbone, mlpSpec } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import type { LossOps } from '../shared/loss-ops.js';
import { tfjsTensorOps } from '../shared/loss-ops.js';
import { stepTensorCounts, thirdStep } from '../shared/method-testing.js';
import { smallestSingularVectors } from '../shared/spectral.js';
import { BSS_DIRECTIONS, bss, bssPenalty } from './index.js';

/** F = U diag(σ) Vᵀ (b × d, row-major) with random orthonormal U [b, r], V [d, r]. */
function withSingularValues(b: number, d: number, sigma: number[], seed: number): Float64Array {
  const rng = createRng(seed);
  const orthonormal = (n: number) => {
    const cols: number[][] = [];
    while (cols.length < sigma.length) {
      const v = rng.normalArray(n);
      for (const c of cols) {
        const dot = c.reduce((s, ci, i) => s + ci * (v[i] as number), 0);
        c.forEach((ci, i) => {
          v[i] = (v[i] as number) - dot * ci;
        });
      }
      const norm = Math.hypot(...v);
      cols.push(Array.from(v, (x) => x / norm));
    }
    return cols;
  };
  const u = orthonormal(b);
  const v = orthonormal(d);
  const f = new Float64Array(b * d);
  sigma.forEach((s, r) => {
    for (let i = 0; i < b; i++)
      for (let j = 0; j < d; j++)
        f[i * d + j] = (f[i * d + j] as number) + s * (u[r]?.[i] as number) * (v[r]?.[j] as number);
  });
  return f;
}

/** η ‖F V_k‖² and its tfjs gradient in F, V_k from F (the loss as the engines run it). */
function penaltyAndGrad(f: Float64Array, b: number, d: number, k: number, eta: number) {
  const { v } = smallestSingularVectors(f, b, d, k);
  const vk = tf.tensor2d(v, [d, k]);
  const ops = { ...tfjsTensorOps, value: () => vk } as unknown as LossOps<tf.Tensor>;
  const fn = (x: tf.Tensor) => bssPenalty(eta)(ops, x) as tf.Scalar;
  const x = tf.tensor2d(Float32Array.from(f), [b, d]);
  const { value, grad } = tf.valueAndGrad(fn)(x);
  const out = { value: value.dataSync()[0] as number, grad: Array.from(grad.dataSync()), v };
  tf.dispose([vk, x, value, grad]);
  return out;
}

/** η Σ of the k smallest σ², in float64 (the SVD's values, not the penalty's graph). */
const trueSum = (f: Float64Array, b: number, d: number, k: number, eta: number) =>
  eta * smallestSingularVectors(f, b, d, k).sigma2.reduce((a, s) => a + s, 0);

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('bss', () => {
  // [b, d, σ, k]: b ≤ d and b > d, distinct values, repeated values inside
  // the k, a rank-deficient batch (the fifth σ of a 5 × 5 F is 0).
  const cases: [number, number, number[], number][] = [
    [4, 6, [3, 2, 0.5, 0.25], 1],
    [7, 4, [3, 2, 1, 0.5], 2],
    [4, 6, [3, 2, 1, 1], 2],
    [6, 4, [2, 0.7, 0.7, 0.7], 3],
    [5, 5, [3, 2, 1, 0.5], 2],
  ];
  for (const [b, d, sigma, k] of cases) {
    it(`η Σ σ² of the ${k} smallest of σ = [${sigma}] (${b} × ${d}): value, gradient by hand and by finite differences`, () => {
      const eta = 0.3;
      const f = withSingularValues(b, d, sigma, b * 10 + d);
      const all = [...sigma, ...Array(Math.min(b, d) - sigma.length).fill(0)];
      const smallest = all.sort((x, y) => x - y).slice(0, k);
      const { value, grad, v } = penaltyAndGrad(f, b, d, k, eta);
      expect(value).toBeCloseTo(eta * smallest.reduce((a, s) => a + s * s, 0), 4);
      // By hand: 2η F V_k V_kᵀ.
      for (let i = 0; i < b; i++)
        for (let j = 0; j < d; j++) {
          let s = 0;
          for (let t = 0; t < d; t++)
            for (let c = 0; c < k; c++)
              s += (f[i * d + t] as number) * (v[t * k + c] as number) * (v[j * k + c] as number);
          expect(grad[i * d + j]).toBeCloseTo(2 * eta * s, 4);
        }
      // Central differences of the true Σ σ² (float64, no fixed V_k).
      const h = 1e-5;
      for (let e = 0; e < b * d; e++) {
        const up = Float64Array.from(f);
        const down = Float64Array.from(f);
        up[e] = (up[e] as number) + h;
        down[e] = (down[e] as number) - h;
        const fd = (trueSum(up, b, d, k, eta) - trueSum(down, b, d, k, eta)) / (2 * h);
        expect(Math.abs((grad[e] as number) - fd)).toBeLessThan(1e-4);
      }
    });
  }

  const backbone = createBackbone(mlpSpec([3, 3, 1], [8, 6]));
  for (const engine of ['tfjs', 'onnxruntime'] as const) {
    it(`${engine}: the loss is CE + η Σ σ² of the k smallest (by hand, after the weights moved)`, async () => {
      const sessions = liveSessionCount();
      const options = { k: 2, eta: 0.5, backboneLrMultiplier: 1, lr: 0.05 };
      const r = await thirdStep(bss, engine, options, backbone);
      const byHand = tf.tidy(() => {
        const f = backbone.apply(r.before, r.batch.x).features;
        const logits = tf.add(
          tf.matMul(f, r.before['head.weight'] as tf.Tensor2D),
          r.before['head.bias'] as tf.Tensor,
        );
        const ce = softmaxCrossEntropy(logits, r.batch.y).dataSync()[0] as number;
        return ce + trueSum(Float64Array.from(f.dataSync()), 8, 6, 2, 0.5);
      });
      expect(r.loss).toBeCloseTo(byHand, 4);
      r.dispose();
      // The features probe's session is released with the trainer.
      expect(liveSessionCount()).toBe(sessions);
    });
  }

  it('takes no tensors per step; refuses bad options', async () => {
    const growth = await stepTensorCounts(bss, { k: 2 }, backbone);
    expect(growth.grew, `${growth.counts}`).toBe(false);
    expect(() => bss.validate({ k: 0 })).toThrow(/k must be a positive integer/);
    expect(() => bss.validate({ k: 1.5 })).toThrow(/k must be a positive integer/);
    expect(() => bss.validate({ eta: -1 })).toThrow(/eta must be ≥ 0/);
    expect(() => bss.validate({ gamma: 1 })).toThrow(/unknown option "gamma"/);
    expect(BSS_DIRECTIONS).toBe('bss:directions');
  });
});
