import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { hScore } from './hscore.js';
import { cholesky, forwardSubstitute } from './linalg.js';

function randomData(n: number, d: number, c: number, seed: number) {
  const rng = createRng(seed);
  const means = Array.from({ length: c }, () => Array.from({ length: d }, () => rng.normal()));
  const y = Array.from({ length: n }, (_, i) => i % c);
  const x = y.map((k) => (means[k] as number[]).map((m) => m + rng.normal()));
  return { x, y, rng };
}

describe('hScore', () => {
  it('matches a 1-D example computed by hand', () => {
    // f = [0, 2, 4, 6], y = [0, 0, 1, 1]: mean 3, var f = (9 + 1 + 1 + 9)/4 = 5;
    // class means 1 and 5 → E[f|y] = [1, 1, 5, 5], var = (4·4)/4 = 4; H = 4/5
    expect(hScore([[0], [2], [4], [6]], [0, 0, 1, 1])).toBeCloseTo(0.8, 14);
    // 2-D with a diagonal covariance: f = (u, v), u as above, v = [1, -1, -1, 1] (no class signal)
    // cov = diag(5, 1), between = diag(4, 0) → H = 4/5 + 0
    expect(
      hScore(
        [
          [0, 1],
          [2, -1],
          [4, -1],
          [6, 1],
        ],
        [0, 0, 1, 1],
      ),
    ).toBeCloseTo(0.8, 14);
  });

  it('equals tr(cov(f)⁻¹ cov(E[f|y])) formed explicitly (Cholesky solves)', () => {
    const { x, y } = randomData(50, 4, 3, 10);
    const n = x.length;
    const d = 4;
    const mean = [0, 1, 2, 3].map((j) => x.reduce((s, r) => s + (r[j] as number), 0) / n);
    const cov = new Float64Array(d * d);
    const between = new Float64Array(d * d);
    for (const r of x)
      for (let p = 0; p < d; p++)
        for (let q = 0; q < d; q++)
          cov[p * d + q] =
            (cov[p * d + q] as number) +
            (((r[p] as number) - (mean[p] as number)) * ((r[q] as number) - (mean[q] as number))) /
              n;
    for (let k = 0; k < 3; k++) {
      const members = x.filter((_, i) => y[i] === k);
      const mk = [0, 1, 2, 3].map(
        (j) =>
          members.reduce((s, r) => s + (r[j] as number), 0) / members.length - (mean[j] as number),
      );
      for (let p = 0; p < d; p++)
        for (let q = 0; q < d; q++)
          between[p * d + q] =
            (between[p * d + q] as number) +
            (members.length / n) * (mk[p] as number) * (mk[q] as number);
    }
    // tr(C⁻¹B) = Σ_q e_qᵀ C⁻¹ B e_q; with C = LLᵀ, C⁻¹b = L⁻ᵀ(L⁻¹b) and
    // e_qᵀ L⁻ᵀ z = (L⁻¹e_q)ᵀ z
    const l = cholesky(cov, d);
    let trace = 0;
    for (let q = 0; q < d; q++) {
      const z = forwardSubstitute(
        l,
        d,
        [0, 1, 2, 3].map((p) => between[p * d + q] as number),
      );
      const e = forwardSubstitute(
        l,
        d,
        [0, 1, 2, 3].map((p) => (p === q ? 1 : 0)),
      );
      trace += z.reduce((s, v, k) => s + v * (e[k] as number), 0);
    }
    expect(hScore(x, y)).toBeCloseTo(trace, 10);
  });

  it('is invariant to invertible linear maps of the features', () => {
    const { x, y, rng } = randomData(120, 5, 3, 11);
    const base = hScore(x, y);
    expect(base).toBeGreaterThan(0);
    expect(base).toBeLessThanOrEqual(2); // ≤ C − 1
    const a = Array.from({ length: 5 }, (_, i) =>
      Array.from({ length: 5 }, (_, j) => (i === j ? 2 : 0) + rng.normal()),
    );
    const ax = x.map((row) =>
      a.map((ar) => ar.reduce((s, aij, j) => s + aij * (row[j] as number), 0)),
    );
    expect(hScore(ax, y)).toBeCloseTo(base, 9);
    // translation and scaling too
    expect(
      hScore(
        x.map((r) => r.map((v) => 1000 * v + 3)),
        y,
      ),
    ).toBeCloseTo(base, 9);
  });

  it('uses the pseudo-inverse for a singular covariance: dependent columns change nothing', () => {
    const { x, y } = randomData(60, 3, 4, 12);
    const base = hScore(x, y);
    // append f1 + 2 f2 and a constant column: cov becomes singular (rank 3 of 5)
    const extended = x.map((r) => [...r, (r[0] as number) + 2 * (r[1] as number), 7]);
    expect(hScore(extended, y)).toBeCloseTo(base, 9);
    // d ≥ n: H saturates at C − 1
    const wide = randomData(8, 20, 2, 13);
    expect(hScore(wide.x, wide.y)).toBeCloseTo(1, 9);
  });

  it('gives clear errors on degenerate inputs', () => {
    expect(() => hScore([[1], [2], [3]], [0, 1])).toThrow(/features has 3 rows but labels has 2/);
    expect(() => hScore([[1], [2], [3]], [0, 2, 0])).toThrow(/target class 1 has no samples/);
    expect(() => hScore([[1], [Number.NaN]], [0, 1])).toThrow(/features\[1\]\[0\] is NaN/);
    expect(() => hScore([[], []], [0, 1])).toThrow(/features has dimension 0/);
    expect(() => hScore({ data: new Float64Array(0), rows: 2, cols: 0 }, [0, 1])).toThrow(
      /dimension 0/,
    );
    expect(() => hScore([[1], [1]], [0, 1])).toThrow(/constant/);
  });
});
