import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { logisticRidgeFit, logisticRidgeFitCg } from './monte-carlo.js';

function problem(seed: number, n: number, p: number) {
  const rng = createRng(seed);
  const data = Float64Array.from(rng.normalArray(n * p));
  const teacher = rng.normalArray(p);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < p; j++) s += (data[i * p + j] as number) * (teacher[j] as number);
    y[i] = s + 0.5 * Math.sqrt(p) * rng.normal() >= 0 ? 1 : -1;
  }
  return { x: { data, rows: n, cols: p }, y };
}

describe('logisticRidgeFitCg (truncated Newton)', () => {
  it('equals the dense Newton fit, with n > p and with separable n < p at λ = 0.01', () => {
    for (const [n, p, lambda] of [
      [120, 40, 0.1],
      [30, 60, 0.01],
    ] as const) {
      const { x, y } = problem(n + p, n, p);
      const s = 1 / Math.sqrt(p);
      const dense = logisticRidgeFit(x, y, lambda, s, { tolerance: 1e-12 });
      const cg = logisticRidgeFitCg(x, y, lambda, s, { tolerance: 1e-12 });
      const norm = Math.sqrt(dense.weights.reduce((a, v) => a + v * v, 0));
      let diff = 0;
      dense.weights.forEach((v, j) => {
        diff = Math.max(diff, Math.abs(v - (cg.weights[j] as number)));
      });
      expect(diff / norm).toBeLessThan(1e-8);
      expect(cg.trainLoss).toBeCloseTo(dense.trainLoss, 10);
      // Warm start from a perturbed point and float32 storage reach the same optimum.
      const f32 = { ...x, data: Float32Array.from(x.data) };
      const dense32 = logisticRidgeFit({ ...x, data: Float64Array.from(f32.data) }, y, lambda, s, {
        tolerance: 1e-12,
      });
      const warm = logisticRidgeFitCg(f32, y, lambda, s, {
        tolerance: 1e-12,
        init: cg.weights.map((v) => 1.5 * v),
      });
      warm.weights.forEach((v, j) => {
        expect(Math.abs(v - (dense32.weights[j] as number))).toBeLessThan(1e-8 * norm);
      });
    }
  });

  it('checks its inputs', () => {
    const { x, y } = problem(1, 4, 3);
    expect(() => logisticRidgeFitCg(x, y, 0)).toThrow(/lambda must be positive/);
    expect(() => logisticRidgeFitCg(x, [1, -1, 1, 0], 1)).toThrow(/labels must be ±1/);
    expect(() => logisticRidgeFitCg(x, y, 1, 1, { init: [1] })).toThrow(/init has 1 entries/);
  });
});
