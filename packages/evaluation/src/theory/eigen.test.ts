import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { symmetricEigen } from '../estimators/linalg.js';
import { symmetricEigenProjections } from './eigen.js';

/** Reference by Jacobi with eigenvectors: eigenvalues (descending) and (uᵢᵀv)². */
function reference(a: Float64Array, n: number, v: Float64Array) {
  const { values, vectors } = symmetricEigen(a, n);
  const pairs = Array.from({ length: n }, (_, j) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += (vectors[i * n + j] as number) * (v[i] as number);
    return [values[j] as number, s * s] as const;
  }).sort((x, y) => y[0] - x[0]);
  return { values: pairs.map((p) => p[0]), projections: pairs.map((p) => p[1]) };
}

describe('symmetricEigenProjections', () => {
  const rng = createRng(17);
  const gram = (n: number, rank: number, ridge: number) => {
    const b = rng.normalArray(n * rank);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < rank; k++)
          s += (b[i * rank + k] as number) * (b[j * rank + k] as number);
        a[i * n + j] = s / rank + (i === j ? ridge : 0);
      }
    return a;
  };

  it('equals Jacobi eigenvalues and projections on full-rank and rank-deficient matrices', () => {
    for (const [n, rank, ridge] of [
      [1, 1, 0],
      [2, 2, 0.1],
      [7, 7, 0],
      [50, 50, 0.2],
      [60, 20, 0], // 40 zero eigenvalues: the projections on them must vanish
    ] as const) {
      const a = gram(n, rank, ridge);
      const v = Float64Array.from(rng.normalArray(n));
      const mine = symmetricEigenProjections(a, n, v);
      const ref = reference(a, n, v);
      const scale = Math.max(1, ...ref.values.map(Math.abs));
      ref.values.forEach((val, j) => {
        expect(Math.abs((mine.values[j] as number) - val)).toBeLessThan(1e-12 * scale);
      });
      // Projections are defined per eigenvalue only where it is simple; the zero
      // eigenspace of the rank-deficient case is compared as a whole.
      const simple = ref.values.map((val) => Math.abs(val) > 1e-9 * scale);
      let zeroMine = 0;
      let zeroRef = 0;
      ref.projections.forEach((pr, j) => {
        if (simple[j])
          expect(Math.abs((mine.projections[j] as number) - pr)).toBeLessThan(1e-9 * (1 + pr));
        else {
          zeroMine += mine.projections[j] as number;
          zeroRef += pr;
        }
      });
      expect(Math.abs(zeroMine - zeroRef)).toBeLessThan(1e-9);
      // Σ projections = ‖v‖² (the eigenvectors are orthonormal)
      const total = mine.projections.reduce((s, x) => s + x, 0);
      const vv = v.reduce((s, x) => s + x * x, 0);
      expect(total).toBeCloseTo(vv, 10);
    }
  });

  it('handles a diagonal matrix with repeated eigenvalues and rejects bad input', () => {
    const a = Float64Array.from([2, 0, 0, 0, 1, 0, 0, 0, 2]);
    const r = symmetricEigenProjections(a, 3, [1, 2, 3]);
    expect(Array.from(r.values)).toEqual([2, 2, 1]);
    expect((r.projections[0] as number) + (r.projections[1] as number)).toBeCloseTo(10, 14);
    expect(r.projections[2]).toBeCloseTo(4, 14);
    expect(() => symmetricEigenProjections([1, 2], 2, [1, 1])).toThrow(/expected 4 entries/);
    expect(() => symmetricEigenProjections([1, Number.NaN, Number.NaN, 1], 2, [1, 1])).toThrow(
      /non-finite/,
    );
  });
});
