import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { gaussianLogDensity, symmetricEigen } from './linalg.js';
import { logME, logMEDetails, logMEEvidence, logMERegression } from './logme.js';

function gaussianMatrix(n: number, d: number, seed: number): number[][] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => Array.from({ length: d }, () => rng.normal()));
}

/** log N(y; 0, (1/β) I + (1/α) F Fᵀ), formed explicitly and factorised by Cholesky. */
function bruteForceEvidence(f: number[][], y: number[], alpha: number, beta: number): number {
  const n = f.length;
  const cov = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let dot = 0;
      (f[i] as number[]).forEach((v, k) => {
        dot += v * ((f[j] as number[])[k] as number);
      });
      cov[i * n + j] = dot / alpha + (i === j ? 1 / beta : 0);
    }
  return gaussianLogDensity(y, cov);
}

/** Labels from a noisy linear score, so the features carry signal. */
function labelsFor(f: number[][], seed: number, classes: number): number[] {
  const rng = createRng(seed);
  const w = Array.from({ length: classes }, () => (f[0] as number[]).map(() => rng.normal()));
  return f.map((row) => {
    const s = w.map(
      (wc) => wc.reduce((acc, v, k) => acc + v * (row[k] as number), 0) + rng.normal(),
    );
    return s.indexOf(Math.max(...s));
  });
}

describe('logME evidence', () => {
  it('equals the log density of y under N(0, I/β + FFᵀ/α) computed directly (Cholesky)', () => {
    const cases: [string, number[][]][] = [
      ['n > d', gaussianMatrix(12, 4, 1)],
      ['n < d', gaussianMatrix(6, 10, 2)],
      // a duplicated column and a zero column: FᵀF is singular (rank 3 of 5)
      ['rank-deficient', gaussianMatrix(10, 3, 3).map((r) => [...r, r[0] as number, 0])],
    ];
    const rng = createRng(4);
    for (const [, f] of cases) {
      const n = f.length;
      const oneHot = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 1 : 0));
      const real = Array.from({ length: n }, () => rng.normal());
      for (const y of [oneHot, real])
        for (const [alpha, beta] of [
          [1, 1],
          [0.3, 5],
          [20, 0.1],
          [1e-3, 1e3],
        ] as const) {
          const expected = bruteForceEvidence(f, y, alpha, beta);
          const got = logMEEvidence(f, y, alpha, beta);
          expect(Math.abs(got - expected)).toBeLessThan(1e-9 * Math.max(1, Math.abs(expected)));
        }
    }
  });

  it('the fixed point maximises the evidence: perturbing α or β lowers it', () => {
    const f = gaussianMatrix(40, 5, 5);
    const y = labelsFor(f, 6, 3);
    const details = logMEDetails(f, y);
    expect(details.columns).toHaveLength(3);
    details.columns.forEach((col, k) => {
      expect(col.converged).toBe(true);
      const column = y.map((v) => (v === k ? 1 : 0));
      const at = (a: number, b: number) => logMEEvidence(f, column, a, b);
      const best = at(col.alpha, col.beta);
      expect(best / 40).toBeCloseTo(col.evidence, 12);
      for (const s of [0.9, 0.99, 1.01, 1.1]) {
        expect(at(col.alpha * s, col.beta)).toBeLessThan(best);
        expect(at(col.alpha, col.beta * s)).toBeLessThan(best);
        expect(at(col.alpha * s, col.beta * s)).toBeLessThan(best);
        expect(at(col.alpha * s, col.beta / s)).toBeLessThan(best);
      }
      // and nothing on a wide log-grid beats it
      for (let la = -4; la <= 4; la += 0.5)
        for (let lb = -4; lb <= 4; lb += 0.5)
          expect(at(col.alpha * 10 ** la, col.beta * 10 ** lb)).toBeLessThanOrEqual(best + 1e-9);
    });
    expect(logME(f, y)).toBeCloseTo(details.columns.reduce((s, c) => s + c.evidence, 0) / 3, 14);
  });

  it('is invariant to rotations of the feature space (the prior on w is isotropic)', () => {
    const f = gaussianMatrix(50, 4, 7);
    const y = labelsFor(f, 8, 2);
    // orthogonal Q from the eigenvectors of a random symmetric matrix
    const s = new Float64Array(16);
    const rng = createRng(9);
    for (let i = 0; i < 4; i++)
      for (let j = i; j < 4; j++) {
        const v = rng.normal();
        s[i * 4 + j] = v;
        s[j * 4 + i] = v;
      }
    const q = symmetricEigen(s, 4).vectors;
    const fq = f.map((row) =>
      [0, 1, 2, 3].map((j) => row.reduce((acc, v, k) => acc + v * (q[k * 4 + j] as number), 0)),
    );
    expect(logME(fq, y)).toBeCloseTo(logME(f, y), 9);
  });

  it('works with more features than samples (eigendecomposes FFᵀ instead)', () => {
    const f = gaussianMatrix(20, 60, 10);
    const y = Array.from({ length: 20 }, (_, i) => i % 2);
    const score = logME(f, y);
    expect(Number.isFinite(score)).toBe(true);
    // same value through the flat matrix form
    expect(logME({ data: Float64Array.from(f.flat()), rows: 20, cols: 60 }, y)).toBeCloseTo(
      score,
      12,
    );
  });

  it('regression targets: a linear target scores higher than noise', () => {
    const f = gaussianMatrix(60, 4, 11);
    const rng = createRng(12);
    const linear = f.map((r) => [(r[0] as number) - 2 * (r[2] as number) + 0.1 * rng.normal()]);
    const noise = f.map(() => [rng.normal()]);
    expect(logMERegression(f, linear).score).toBeGreaterThan(logMERegression(f, noise).score + 0.5);
  });

  it('gives clear errors on degenerate inputs', () => {
    const f = gaussianMatrix(4, 2, 13);
    expect(() => logME(f, [0, 1, 1])).toThrow(/features has 4 rows but labels has 3 entries/);
    expect(() => logME(f, [0, 2, 2, 0])).toThrow(/target class 1 has no samples/);
    expect(() => logME([[1, Number.POSITIVE_INFINITY]], [0])).toThrow(
      /features\[0\]\[1\] is Infinity/,
    );
    expect(() => logME([[], []], [0, 1])).toThrow(/dimension 0/);
    expect(() =>
      logME(
        [
          [0, 0],
          [0, 0],
        ],
        [0, 1],
      ),
    ).toThrow(/all zero/);
    expect(() => logMEEvidence(f, [1, 0, 0, 1], 0, 1)).toThrow(/alpha and beta must be/);
  });
});
