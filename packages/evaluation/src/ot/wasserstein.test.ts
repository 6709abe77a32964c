import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { classwiseWasserstein, euclideanCost, wasserstein1 } from './wasserstein.js';

/**
 * W1 on the line from quantile functions: W1 = ∫₀¹ |F⁻¹(u) − G⁻¹(u)| du. Both
 * quantile functions are step functions that change only where the cumulative
 * weights of either sample jump, so the integral is a finite sum.
 */
function quantileW1(x: number[], wx: number[], y: number[], wy: number[]): number {
  const sorted = (v: number[], w: number[]) => {
    const s = w.reduce((p, q) => p + q, 0);
    return v
      .map((value, i) => ({ value, w: (w[i] as number) / s }))
      .sort((p, q) => p.value - q.value);
  };
  const xs = sorted(x, wx);
  const ys = sorted(y, wy);
  let i = 0;
  let j = 0;
  let cx = xs[0]?.w as number;
  let cy = ys[0]?.w as number;
  let u = 0;
  let total = 0;
  while (i < xs.length && j < ys.length) {
    const next = Math.min(cx, cy);
    total += (next - u) * Math.abs((xs[i]?.value as number) - (ys[j]?.value as number));
    u = next;
    if (cx <= next + 1e-15) {
      i++;
      cx += xs[i]?.w ?? 0;
    }
    if (cy <= next + 1e-15) {
      j++;
      cy += ys[j]?.w ?? 0;
    }
  }
  return total;
}

describe('wasserstein1', () => {
  it('matches the sorted-sample formula in 1-D for equal sizes and uniform weights', () => {
    const rng = createRng(1);
    const x = Array.from({ length: 9 }, () => rng.normal());
    const y = Array.from({ length: 9 }, () => 2 + 0.5 * rng.normal());
    const xs = x.slice().sort((p, q) => p - q);
    const ys = y.slice().sort((p, q) => p - q);
    const expected = xs.reduce((s, v, i) => s + Math.abs(v - (ys[i] as number)), 0) / 9;
    expect(
      wasserstein1(
        x.map((v) => [v]),
        y.map((v) => [v]),
      ),
    ).toBeCloseTo(expected, 12);
  });

  it('matches the quantile formula in 1-D with unequal sizes and weights', () => {
    const rng = createRng(2);
    for (let trial = 0; trial < 10; trial++) {
      const n = 3 + rng.int(8);
      const m = 2 + rng.int(8);
      const x = Array.from({ length: n }, () => rng.normal());
      const y = Array.from({ length: m }, () => rng.normal() + trial / 5);
      const wx = Array.from({ length: n }, () => rng.next() + 0.05);
      const wy = Array.from({ length: m }, () => rng.next() + 0.05);
      const expected = quantileW1(x, wx, y, wy);
      expect(
        wasserstein1(
          x.map((v) => [v]),
          y.map((v) => [v]),
          wx,
          wy,
        ),
      ).toBeCloseTo(expected, 10);
      // uniform default
      expect(
        wasserstein1(
          x.map((v) => [v]),
          y.map((v) => [v]),
        ),
      ).toBeCloseTo(quantileW1(x, new Array(n).fill(1), y, new Array(m).fill(1)), 10);
    }
  });

  it('is a distance: 0 on identical clouds, the shift length for a translated cloud, symmetric', () => {
    const rng = createRng(3);
    const x = Array.from({ length: 12 }, () => [rng.normal(), rng.normal(), rng.normal()]);
    expect(wasserstein1(x, x)).toBeCloseTo(0, 14);
    // translation by t: W1 = |t| (the identity coupling is optimal; |E[x − y]| ≤ W1)
    const shifted = x.map(([p, q, r]) => [(p as number) + 3, (q as number) - 4, r as number]);
    expect(wasserstein1(x, shifted)).toBeCloseTo(5, 12);
    const y = Array.from({ length: 7 }, () => [rng.normal(), rng.normal(), rng.normal()]);
    expect(wasserstein1(x, y)).toBeCloseTo(wasserstein1(y, x), 12);
  });

  it('euclideanCost gives pairwise distances; dimension mismatch is named', () => {
    expect(
      Array.from(
        euclideanCost(
          [[0, 0]],
          [
            [3, 4],
            [0, 1],
          ],
        )[0] as Float64Array,
      ),
    ).toEqual([5, 1]);
    expect(() => wasserstein1([[0, 0]], [[1]])).toThrow(/X has dimension 2 but Y has dimension 1/);
    expect(() => wasserstein1([[0], [1]], [[1]], [1])).toThrow(
      /wx has 1 entries but the point cloud has 2/,
    );
  });
});

describe('classwiseWasserstein', () => {
  it('averages the per-class W1 with equal class weights', () => {
    // class 0: source {0, 2}, target {1, 3} → W1 = 1
    // class 1: source {10}, target {10, 14} → W1 = (0 + 4)/2 = 2
    // class 2: source {5, 5, 5}, target {5} → 0;  mean = (1 + 2 + 0)/3 = 1
    const xs = [[0], [10], [2], [5], [5], [5]];
    const ys = [0, 1, 0, 2, 2, 2];
    const xt = [[14], [1], [3], [10], [5]];
    const yt = [1, 0, 0, 1, 2];
    const r = classwiseWasserstein(xs, ys, xt, yt);
    expect(r.distance).toBeCloseTo(1, 14);
    expect(r.perClass.map((c) => [c.label, c.nSource, c.nTarget])).toEqual([
      [0, 2, 2],
      [1, 1, 2],
      [2, 3, 1],
    ]);
    expect(r.perClass.map((c) => c.distance)).toEqual([
      expect.closeTo(1, 14),
      expect.closeTo(2, 14),
      expect.closeTo(0, 14),
    ]);
  });

  it('names a class present in one set but not the other, and mismatched lengths', () => {
    const x = [[0], [1], [2]];
    expect(() => classwiseWasserstein(x, [0, 1, 3], x, [0, 1, 1])).toThrow(
      /class 3 has 1 source samples but no target samples/,
    );
    expect(() => classwiseWasserstein(x, [0, 1, 1], x, [0, 1, 2])).toThrow(
      /class 2 has 1 target samples but no source samples/,
    );
    expect(() => classwiseWasserstein(x, [0, 1], x, [0, 1, 1])).toThrow(
      /Xs has 3 rows but ys has 2 entries/,
    );
    expect(() => classwiseWasserstein(x, [0, 1, 1], [[0, 0]], [0])).toThrow(
      /Xs has dimension 1 but Xt has dimension 2/,
    );
  });
});
