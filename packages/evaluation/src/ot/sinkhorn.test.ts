import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { emd } from './emd.js';
import { sinkhorn } from './sinkhorn.js';

function entropy(p: number[]): number {
  return -p.reduce((s, v) => (v > 0 ? s + v * Math.log(v) : s), 0);
}

function problem(seed: number, n: number, m: number) {
  const rng = createRng(seed);
  const norm = (v: number[]) => {
    const s = v.reduce((x, y) => x + y, 0);
    return v.map((x) => x / s);
  };
  const a = norm(Array.from({ length: n }, () => rng.next() + 0.1));
  const b = norm(Array.from({ length: m }, () => rng.next() + 0.1));
  const M = Array.from({ length: n }, () => Array.from({ length: m }, () => rng.next()));
  return { a, b, M };
}

describe('sinkhorn (log domain)', () => {
  it('tends to the exact OT cost as eps → 0, within eps·min(H(a), H(b))', () => {
    // For the plan P_ε minimising ⟨P, M⟩ − εH(P):
    //   0 ≤ ⟨P_ε, M⟩ − OT ≤ ε (H(P_ε) − H(P*)) ≤ ε min(H(a), H(b)).
    const { a, b, M } = problem(1, 6, 5);
    const exact = emd(a, b, M).cost;
    const bound = Math.min(entropy(a), entropy(b));
    let previous = Number.POSITIVE_INFINITY;
    for (const eps of [0.3, 0.1, 0.03, 0.01, 0.003, 0.001]) {
      const r = sinkhorn(a, b, M, eps, { tol: 1e-12, maxIter: 200_000 });
      expect(r.converged).toBe(true);
      const gap = r.cost - exact;
      expect(gap).toBeGreaterThan(-1e-9);
      expect(gap).toBeLessThanOrEqual(eps * bound + 1e-9);
      // ⟨P_ε, M⟩ is non-decreasing in ε
      expect(r.cost).toBeLessThanOrEqual(previous + 1e-9);
      previous = r.cost;
    }
    // stated tolerance at ε = 1e-3: within 1e-3 of the exact cost
    expect(previous - exact).toBeLessThan(1e-3);
  });

  it('plan marginals are within tol (rows) and exact (columns); zero masses stay empty', () => {
    const rng = createRng(2);
    const n = 30;
    const m = 40;
    const a = Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 0 : rng.next()));
    const sa = a.reduce((x, y) => x + y, 0);
    const b = Array.from({ length: m }, () => rng.next());
    const sb = b.reduce((x, y) => x + y, 0);
    const bn = b.map((v) => (v * sa) / sb);
    const M = Array.from({ length: n }, () => Array.from({ length: m }, () => 5 * rng.next()));
    for (const tol of [1e-4, 1e-8]) {
      const r = sinkhorn(a, bn, M, 0.05, { tol, maxIter: 50_000 });
      expect(r.converged).toBe(true);
      let rowErr = 0;
      a.forEach((ai, i) => {
        const row = r.plan[i] as Float64Array;
        rowErr += Math.abs(row.reduce((s, v) => s + v, 0) - ai);
        if (ai === 0) {
          for (const v of row) expect(v).toBe(0);
          expect(r.f[i]).toBe(Number.NEGATIVE_INFINITY);
        }
      });
      expect(rowErr / sa).toBeLessThanOrEqual(tol);
      expect(r.marginalError).toBeLessThanOrEqual(tol);
      bn.forEach((bj, j) => {
        const col = r.plan.reduce((s, row) => s + (row[j] as number), 0);
        expect(Math.abs(col - bj)).toBeLessThan(1e-12);
      });
    }
  });

  it('stays finite and converges for eps so small that exp(−M/eps) underflows', () => {
    const { a, b, M } = problem(3, 5, 5);
    const big = M.map((row) => row.map((v) => 2 * v)); // exp(−2/1e-3) = exp(−2000) = 0 in float64
    let underflows = 0;
    for (const row of big) for (const v of row) if (Math.exp(-v / 1e-3) === 0) underflows++;
    expect(underflows).toBeGreaterThan(10);
    const r = sinkhorn(a, b, big, 1e-3, { maxIter: 200_000, tol: 1e-10 });
    expect(r.converged).toBe(true);
    for (const row of r.plan) for (const v of row) expect(Number.isFinite(v)).toBe(true);
    // columns are exact up to the rounding of exponents of size max|M|/ε = 2000
    b.forEach((bj, j) => {
      expect(Math.abs(r.plan.reduce((s, row) => s + (row[j] as number), 0) - bj)).toBeLessThan(
        1e-11,
      );
    });
    const gap = r.cost - emd(a, b, big).cost;
    expect(gap).toBeGreaterThan(-1e-9);
    expect(gap).toBeLessThanOrEqual(1e-3 * Math.min(entropy(a), entropy(b)) + 1e-9);
    // a few iterations at ε = 1e-5 (exponents up to 2e5) are finite too
    const tiny = sinkhorn(a, b, big, 1e-5, { maxIter: 50 });
    for (const row of tiny.plan) for (const v of row) expect(Number.isFinite(v)).toBe(true);
  });

  it('reports non-convergence instead of throwing, and rejects bad eps and unequal masses', () => {
    const { a, b, M } = problem(4, 4, 4);
    const r = sinkhorn(a, b, M, 1e-3, { maxIter: 3, tol: 1e-15 });
    expect(r.converged).toBe(false);
    expect(r.iterations).toBe(3);
    expect(() => sinkhorn(a, b, M, 0)).toThrow(/eps must be a finite number > 0, got 0/);
    expect(() =>
      sinkhorn(
        [1, 0],
        [0.5, 0.4],
        [
          [0, 1],
          [1, 0],
        ],
        0.1,
      ),
    ).toThrow(/equal mass/);
  });

  it('returns dual potentials with their values: the plan, the optimality conditions, the dual objective, POT-style scalings', () => {
    const { a, b, M } = problem(5, 7, 6);
    const eps = 0.05;
    const r = sinkhorn(a, b, M, eps, { tol: 1e-13, maxIter: 100_000 });
    expect(r.converged).toBe(true);
    // (1) The plan is exp((f_i + g_j − M_ij)/ε) with the returned f and g (f not divided by ε).
    for (let i = 0; i < a.length; i++)
      for (let j = 0; j < b.length; j++) {
        const pij = Math.exp(
          ((r.f[i] as number) + (r.g[j] as number) - (M[i]?.[j] as number)) / eps,
        );
        expect(Math.abs(pij - (r.plan[i]?.[j] as number))).toBeLessThan(1e-14);
      }
    // (2) Optimality: f_i = ε log a_i − ε log Σ_j exp((g_j − M_ij)/ε), and the same for g.
    for (let i = 0; i < a.length; i++) {
      let s = 0;
      for (let j = 0; j < b.length; j++)
        s += Math.exp(((r.g[j] as number) - (M[i]?.[j] as number)) / eps);
      expect(r.f[i]).toBeCloseTo(eps * Math.log(a[i] as number) - eps * Math.log(s), 10);
    }
    // (3) Strong duality: Σa f + Σb g − ε ΣP = ⟨P, M⟩ − ε H(P), H(P) = −Σ P (log P − 1).
    let dual = 0;
    a.forEach((ai, i) => {
      dual += ai * (r.f[i] as number);
    });
    b.forEach((bj, j) => {
      dual += bj * (r.g[j] as number);
    });
    let primal = 0;
    for (const row of r.plan)
      for (const v of row) {
        dual -= eps * v;
        primal -= eps * v * (1 - Math.log(v));
      }
    primal += r.cost;
    expect(Math.abs(dual - primal)).toBeLessThan(1e-10);
    // (4) Independent: the kernel-form Sinkhorn (u, v scalings of K = e^{−M/ε}, as POT's
    // sinkhorn_knopp) gives f = ε log u, g = ε log v up to one constant shift.
    const K = M.map((row) => row.map((v) => Math.exp(-v / eps)));
    let u = a.map(() => 1);
    let v = b.map(() => 1);
    for (let it = 0; it < 20_000; it++) {
      v = b.map((bj, j) => bj / u.reduce((s, ui, i) => s + ui * (K[i]?.[j] as number), 0));
      u = a.map((ai, i) => ai / v.reduce((s, vj, j) => s + vj * (K[i]?.[j] as number), 0));
    }
    const shift = (r.f[0] as number) - eps * Math.log(u[0] as number);
    a.forEach((_, i) => {
      expect(r.f[i]).toBeCloseTo(eps * Math.log(u[i] as number) + shift, 9);
    });
    b.forEach((_, j) => {
      expect(r.g[j]).toBeCloseTo(eps * Math.log(v[j] as number) - shift, 9);
    });
    // (5) Σa f + Σb g = ⟨P, M⟩ + ε Σ P log P, so with 0 ≤ ⟨P, M⟩ − OT ≤ ε min(H(a), H(b)) and
    // max(H(a), H(b)) ≤ −Σ P log P ≤ H(a) + H(b): −ε(H(a) + H(b)) ≤ Σa f + Σb g − OT ≤ 0.
    const small = sinkhorn(a, b, M, 1e-3, { tol: 1e-12, maxIter: 200_000 });
    let value = 0;
    a.forEach((ai, i) => {
      value += ai * (small.f[i] as number);
    });
    b.forEach((bj, j) => {
      value += bj * (small.g[j] as number);
    });
    const exact = emd(a, b, M).cost;
    expect(value - exact).toBeLessThanOrEqual(1e-9);
    expect(value - exact).toBeGreaterThanOrEqual(-1e-3 * (entropy(a) + entropy(b)) - 1e-9);
    expect(exact - value).toBeGreaterThan(
      1e-3 * Math.max(entropy(a), entropy(b)) - 1e-3 * Math.min(entropy(a), entropy(b)) - 1e-9,
    );
  });
});
