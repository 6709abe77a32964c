import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { cholesky, gaussianLogDensity, symmetricEigen } from './linalg.js';

function randomSymmetric(d: number, seed: number): Float64Array {
  const rng = createRng(seed);
  const a = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = i; j < d; j++) {
      const v = rng.normal();
      a[i * d + j] = v;
      a[j * d + i] = v;
    }
  return a;
}

describe('symmetricEigen (Jacobi)', () => {
  it('diagonalises a 2×2 matrix by hand: [[2, 1], [1, 2]] has eigenvalues 3 and 1', () => {
    const { values, vectors } = symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2);
    expect(values[0]).toBeCloseTo(3, 14);
    expect(values[1]).toBeCloseTo(1, 14);
    // eigenvector of 3 is ±(1, 1)/√2
    expect(Math.abs(vectors[0] as number)).toBeCloseTo(Math.SQRT1_2, 14);
    expect((vectors[0] as number) * (vectors[2] as number)).toBeCloseTo(0.5, 14);
  });

  it('A V = V Λ and VᵀV = I on random symmetric matrices, eigenvalues sorted descending', () => {
    for (const d of [1, 3, 8, 20]) {
      const a = randomSymmetric(d, d);
      const { values, vectors } = symmetricEigen(a, d);
      let scale = 0;
      for (const v of a) scale = Math.max(scale, Math.abs(v));
      for (let k = 0; k < d; k++) {
        if (k > 0) expect(values[k] as number).toBeLessThanOrEqual(values[k - 1] as number);
        for (let i = 0; i < d; i++) {
          let av = 0;
          for (let j = 0; j < d; j++)
            av += (a[i * d + j] as number) * (vectors[j * d + k] as number);
          expect(
            Math.abs(av - (values[k] as number) * (vectors[i * d + k] as number)),
          ).toBeLessThan(1e-12 * scale * d);
        }
        for (let l = 0; l < d; l++) {
          let dot = 0;
          for (let i = 0; i < d; i++)
            dot += (vectors[i * d + k] as number) * (vectors[i * d + l] as number);
          expect(Math.abs(dot - (k === l ? 1 : 0))).toBeLessThan(1e-12);
        }
      }
    }
  });

  it('finds exact zero eigenvalues of a rank-deficient Gram matrix', () => {
    // G = uuᵀ + wwᵀ in R^4: rank 2
    const u = [1, 2, 0, -1];
    const w = [0, 1, 1, 1];
    const g = new Float64Array(16);
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 4; j++)
        g[i * 4 + j] = (u[i] as number) * (u[j] as number) + (w[i] as number) * (w[j] as number);
    const { values } = symmetricEigen(g, 4);
    // trace = |u|² + |w|² = 6 + 3
    expect((values[0] as number) + (values[1] as number)).toBeCloseTo(9, 12);
    expect(Math.abs(values[2] as number)).toBeLessThan(1e-14);
    expect(Math.abs(values[3] as number)).toBeLessThan(1e-14);
  });

  it('rejects a non-symmetric matrix', () => {
    expect(() => symmetricEigen(Float64Array.from([1, 2, 3, 4]), 2)).toThrow(
      /not symmetric at \(0, 1\)/,
    );
  });
});

describe('cholesky and gaussianLogDensity', () => {
  it('L Lᵀ reproduces A; the log density of a diagonal Gaussian is the sum of 1-D ones', () => {
    const a = Float64Array.from([4, 2, 0.4, 2, 5, 1, 0.4, 1, 3]);
    const l = cholesky(a, 3);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) {
        let s = 0;
        for (let k = 0; k < 3; k++) s += (l[i * 3 + k] as number) * (l[j * 3 + k] as number);
        expect(s).toBeCloseTo(a[i * 3 + j] as number, 14);
      }
    const y = [0.5, -1, 2];
    const vars = [2, 0.5, 3];
    const cov = new Float64Array(9);
    vars.forEach((v, i) => {
      cov[i * 3 + i] = v;
    });
    const expected = y.reduce(
      (s, yi, i) =>
        s - 0.5 * (Math.log(2 * Math.PI * (vars[i] as number)) + yi ** 2 / (vars[i] as number)),
      0,
    );
    expect(gaussianLogDensity(y, cov)).toBeCloseTo(expected, 13);
  });

  it('names the failing pivot of a matrix that is not positive definite', () => {
    expect(() => cholesky(Float64Array.from([1, 2, 2, 1]), 2)).toThrow(/pivot 1/);
  });
});
