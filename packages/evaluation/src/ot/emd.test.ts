import { createRng, type Rng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { type EmdResult, emd } from './emd.js';

function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  const out: number[][] = [];
  for (const p of permutations(n - 1))
    for (let k = 0; k <= p.length; k++) {
      const q = p.slice();
      q.splice(k, 0, n - 1);
      out.push(q);
    }
  return out;
}

function matrix(n: number, m: number, f: (i: number, j: number) => number): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: m }, (_, j) => f(i, j)));
}

/** Row sums equal a and column sums equal b to `tol`; entries ≥ 0. */
function expectMarginals(r: EmdResult, a: number[], b: number[], tol: number): void {
  a.forEach((ai, i) => {
    const row = r.plan[i] as Float64Array;
    expect(Math.abs(row.reduce((s, v) => s + v, 0) - ai)).toBeLessThan(tol);
    for (const v of row) expect(v).toBeGreaterThanOrEqual(0);
  });
  b.forEach((bj, j) => {
    const col = r.plan.reduce((s, row) => s + (row[j] as number), 0);
    expect(Math.abs(col - bj)).toBeLessThan(tol);
  });
}

/**
 * Optimality certificate from LP duality: the plan is feasible, the duals are
 * feasible (u_i + v_j ≤ M_ij), complementary slackness holds and the primal
 * cost equals the dual value Σ a u + Σ b v.
 */
function expectOptimal(r: EmdResult, a: number[], b: number[], M: number[][], tol: number): void {
  expectMarginals(r, a, b, tol);
  let dual = 0;
  a.forEach((ai, i) => {
    dual += ai * (r.u[i] as number);
  });
  b.forEach((bj, j) => {
    dual += bj * (r.v[j] as number);
  });
  expect(Math.abs(r.cost - dual)).toBeLessThan(tol);
  M.forEach((row, i) => {
    row.forEach((mij, j) => {
      const slack = mij - (r.u[i] as number) - (r.v[j] as number);
      expect(slack).toBeGreaterThan(-tol);
      if ((r.plan[i]?.[j] as number) > 1e-12) expect(Math.abs(slack)).toBeLessThan(tol);
    });
  });
}

function randomHistogram(rng: Rng, n: number, zeros: number, mass: number): number[] {
  const h = Array.from({ length: n }, (_, i) => (i < zeros ? 0 : rng.next() + 0.01));
  rng.shuffle(h);
  const s = h.reduce((x, y) => x + y, 0);
  return h.map((v) => (v * mass) / s);
}

/**
 * Independent exact optimum for integer masses and costs: min-cost flow by
 * successive shortest paths (Bellman–Ford from every row with supply left,
 * on the residual network: row → column at +M, column → row at −M where
 * flow runs), augmenting to the nearest column with demand left.
 */
function transportBySsp(a: number[], b: number[], M: number[][]): number {
  const n = a.length;
  const m = b.length;
  const flow = matrix(n, m, () => 0);
  const supply = a.slice();
  const demand = b.slice();
  let cost = 0;
  for (;;) {
    const dist = new Array<number>(n + m).fill(Number.POSITIVE_INFINITY);
    const prev = new Array<number>(n + m).fill(-1);
    supply.forEach((s, i) => {
      if (s > 0) dist[i] = 0;
    });
    for (let changed = true; changed; ) {
      changed = false;
      for (let i = 0; i < n; i++)
        for (let j = 0; j < m; j++) {
          const di = dist[i] as number;
          const dj = dist[n + j] as number;
          const c = M[i]?.[j] as number;
          if (di + c < dj) {
            dist[n + j] = di + c;
            prev[n + j] = i;
            changed = true;
          } else if ((flow[i]?.[j] as number) > 0 && dj - c < di) {
            dist[i] = dj - c;
            prev[i] = n + j;
            changed = true;
          }
        }
    }
    let end = -1;
    demand.forEach((d, j) => {
      if (d > 0 && (end < 0 || (dist[n + j] as number) < (dist[n + end] as number))) end = j;
    });
    if (end < 0 || dist[n + end] === Number.POSITIVE_INFINITY) return cost;
    // bottleneck: demand at the end, supply at the start, flows on backward arcs
    let amount = demand[end] as number;
    let v = n + end;
    while (prev[v] !== -1) {
      const u = prev[v] as number;
      if (u >= n) amount = Math.min(amount, flow[v]?.[u - n] as number);
      v = u;
    }
    amount = Math.min(amount, supply[v] as number);
    supply[v] = (supply[v] as number) - amount;
    demand[end] = (demand[end] as number) - amount;
    for (v = n + end; prev[v] !== -1; v = prev[v] as number) {
      const u = prev[v] as number;
      const row = (u < n ? flow[u] : flow[v]) as number[];
      const j = u < n ? v - n : u - n;
      row[j] = (row[j] as number) + (u < n ? amount : -amount);
    }
    cost += amount * (dist[n + end] as number);
  }
}

describe('emd (network simplex)', () => {
  it('equals brute force over all permutations for uniform weights, n = m ≤ 6', () => {
    // With a = b = 1/n the transport polytope is (1/n)·Birkhoff, whose vertices
    // are permutation matrices, so the optimum is the best permutation.
    const rng = createRng(1);
    for (let n = 1; n <= 6; n++) {
      const perms = permutations(n);
      for (let trial = 0; trial < 15; trial++) {
        // continuous costs, and small integers (many ties, degenerate pivots)
        const M = matrix(n, n, () => (trial % 2 === 0 ? rng.next() * 10 - 3 : rng.int(3)));
        const a = new Array(n).fill(1 / n);
        let best = Number.POSITIVE_INFINITY;
        for (const p of perms)
          best = Math.min(best, p.reduce((s, j, i) => s + (M[i]?.[j] as number), 0) / n);
        const r = emd(a, a, M);
        expect(Math.abs(r.cost - best)).toBeLessThan(1e-12);
        expectOptimal(r, a, a, M, 1e-9);
      }
    }
  });

  it('solves a 2×3 transport with unequal masses, worked by hand', () => {
    // a = [0.5, 0.5], b = [0.3, 0.3, 0.4], M = [[0, 1, 2], [1, 3, 1]].
    // Column 2 costs 1 from row 1 and 3 from row 2: fill it from row 1 (0.3).
    // Row 1's remaining 0.2 goes to column 1 (cost 0); row 2 sends 0.1 to
    // column 1 and 0.4 to column 3 (cost 1 each). Cost = 0.3 + 0.1 + 0.4 = 0.8.
    // Certificate: u = (0, 1), v = (0, 1, 0): u_i + v_j = M_ij on the 4 used cells,
    // reduced costs 2 (cell 1,3) and 1 (cell 2,2) > 0 elsewhere → unique optimum;
    // dual value 0.5·0 + 0.5·1 + 0.3·0 + 0.3·1 + 0.4·0 = 0.8.
    const a = [0.5, 0.5];
    const b = [0.3, 0.3, 0.4];
    const M = [
      [0, 1, 2],
      [1, 3, 1],
    ];
    const r = emd(a, b, M);
    expect(r.cost).toBeCloseTo(0.8, 14);
    const expected = [
      [0.2, 0.3, 0],
      [0.1, 0, 0.4],
    ];
    r.plan.forEach((row, i) => {
      row.forEach((v, j) => {
        expect(v).toBeCloseTo(expected[i]?.[j] as number, 14);
      });
    });
    expectOptimal(r, a, b, M, 1e-12);
    // Masses need not be normalised: ×10 scales the cost
    expect(emd([5, 5], [3, 3, 4], M).cost).toBeCloseTo(8, 12);
  });

  it('plan marginals equal a and b to 1e-9 and duality certifies optimality on larger problems', () => {
    const rng = createRng(2);
    for (const [n, m, zerosA, zerosB, integer] of [
      [30, 45, 0, 0, false],
      [40, 25, 5, 3, false],
      [35, 35, 2, 2, true],
      [60, 10, 0, 0, true],
      [1, 7, 0, 2, false],
    ] as const) {
      const a = randomHistogram(rng, n, zerosA, 3.7);
      const b = randomHistogram(rng, m, zerosB, 3.7);
      const M = matrix(n, m, () => (integer ? rng.int(3) : rng.next()));
      const r = emd(a, b, M);
      expectOptimal(r, a, b, M, 1e-9);
      // zero-mass rows and columns carry nothing
      a.forEach((ai, i) => {
        if (ai === 0) for (const v of r.plan[i] as Float64Array) expect(v).toBe(0);
      });
    }
  });

  it('matches an independent min-cost flow on integer problems with many ties and degenerate pivots', () => {
    // Small integer costs and masses make most pivots degenerate (zero step)
    // and leave many optimal plans: this exercises the tree update (thread,
    // subtree sizes, re-rooted stems) far from the generic case.
    const rng = createRng(7);
    let pivots = 0;
    for (let trial = 0; trial < 150; trial++) {
      const n = 1 + rng.int(40);
      const m = 1 + rng.int(40);
      const a = Array.from({ length: n }, () => (rng.next() < 0.15 ? 0 : 1 + rng.int(4)));
      if (!a.some((x) => x > 0)) a[0] = 1;
      const total = a.reduce((x, y) => x + y, 0);
      const b = new Array<number>(m).fill(0);
      for (let u = 0; u < total; u++) {
        const j = rng.int(m);
        b[j] = (b[j] as number) + 1;
      }
      const M = matrix(n, m, () => rng.int(trial % 3 === 0 ? 2 : 4));
      const r = emd(a, b, M);
      pivots += r.iterations;
      expect(r.cost).toBe(transportBySsp(a, b, M));
      expectOptimal(r, a, b, M, 1e-9);
    }
    expect(pivots).toBeGreaterThan(5000);
  });

  it('handles negative costs and a cost shift changes the cost by the shift', () => {
    const rng = createRng(3);
    const a = randomHistogram(rng, 8, 0, 1);
    const b = randomHistogram(rng, 6, 0, 1);
    const M = matrix(8, 6, () => rng.normal());
    const r = emd(a, b, M);
    expectOptimal(r, a, b, M, 1e-9);
    const shifted = emd(
      a,
      b,
      M.map((row) => row.map((v) => v + 5)),
    );
    expect(shifted.cost).toBeCloseTo(r.cost + 5, 12);
  });

  it('rejects unequal masses, negative masses, bad shapes and non-finite costs', () => {
    const M = [
      [0, 1],
      [1, 0],
    ];
    expect(() => emd([0.5, 0.5], [0.5, 0.6], M)).toThrow(
      /equal mass: sum\(a\) = 1 but sum\(b\) = 1.1/,
    );
    expect(() => emd([1.5, -0.5], [0.5, 0.5], M)).toThrow(/a\[1\] is -0.5/);
    expect(() => emd([0.5, 0.5], [1], M)).toThrow(/M is \[2, 2\] but a has 2 entries and b has 1/);
    expect(() => emd([0, 0], [0, 0], M)).toThrow(/zero total mass/);
    expect(() =>
      emd(
        [0.5, 0.5],
        [0.5, 0.5],
        [
          [0, Number.NaN],
          [1, 0],
        ],
      ),
    ).toThrow(/M\[0\]\[1\] is NaN/);
    // rounding-level differences are accepted (0.1 + 0.2 ≠ 0.3 in float64):
    // everything goes to column 1, row 2 at cost 1 → 0.2
    expect(emd([0.1, 0.2], [0.3, 0], M).cost).toBeCloseTo(0.2, 15);
  });
});
