import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { gcmSpectrum, solveGcm } from './gcm.js';
import { logisticProximal, monotoneRoot, ProximalError } from './proximal.js';
import { randomFeaturesCovariances } from './random-features.js';

/** h(x) = x − ω − V y σ(−yx), written independently of the solver (σ via exp directly). */
function residual(y: number, omega: number, V: number, x: number): number {
  const t = y * x;
  const s = t >= 0 ? Math.exp(-t) / (1 + Math.exp(-t)) : 1 / (1 + Math.exp(t));
  return x - omega - V * y * s;
}

/** Reference root by plain bisection on the same bracket: slow, but it cannot fail. */
function bisectionProx(y: number, omega: number, V: number): number {
  let lo = y > 0 ? omega : omega - V;
  let hi = y > 0 ? omega + V : omega;
  for (let i = 0; i < 200 && hi - lo > 0; i++) {
    const mid = 0.5 * (lo + hi);
    if (mid === lo || mid === hi) break;
    if (residual(y, omega, V, mid) > 0) hi = mid;
    else lo = mid;
  }
  return 0.5 * (lo + hi);
}

function expectRoot(y: number, omega: number, V: number): void {
  const x = logisticProximal(y, omega, V);
  const ref = bisectionProx(y, omega, V);
  // h' ≥ 1, so |x − x*| ≤ |h(x)|: a small residual is a small error.
  const h = residual(y, omega, V, x);
  if (
    !(Math.abs(h) <= 2e-13 * (1 + Math.abs(omega) + V)) ||
    !(Math.abs(x - ref) <= 1e-9 * (1 + Math.abs(ref)))
  )
    throw new Error(`y = ${y}, ω = ${omega}, V = ${V}: x = ${x}, reference ${ref}, residual ${h}`);
}

describe('logisticProximal', () => {
  it('solves the windows where an unguarded Newton iteration bounces between the bracket ends', () => {
    // The windows of issue 15: ω ≈ ∓2.7…3.1 for y = ±1 once V ≳ 20, and ω ≈ −V + 5 (y = +1),
    // ω ≈ V − 5 (y = −1) for V = 25–40. A solve that returned after 100 bounces had residual 10–280 here.
    let checked = 0;
    for (const V of [20, 25, 30, 35, 40, 60, 100, 300]) {
      for (let k = 0; k <= 60; k++) {
        const w = 2.5 + 0.01 * k;
        expectRoot(1, -w, V);
        expectRoot(-1, w, V);
        const u = -V + 3 + 0.07 * k;
        expectRoot(1, u, V);
        expectRoot(-1, -u, V);
        checked += 4;
      }
    }
    expect(checked).toBe(8 * 61 * 4);
    // Points that failed before, by value.
    expect(logisticProximal(1, -3.05, 25)).toBeCloseTo(bisectionProx(1, -3.05, 25), 10);
    expect(logisticProximal(1, -2.65, 100)).toBeCloseTo(bisectionProx(1, -2.65, 100), 10);
    expect(logisticProximal(-1, 37.2, 40)).toBeCloseTo(bisectionProx(-1, 37.2, 40), 10);
  });

  it('is the root on a grid of (V, ω, y): V from 1e-3 to 1e4, ω from −80 to 80', () => {
    let n = 0;
    for (let e = -3; e <= 4; e += 0.25) {
      const V = 10 ** e;
      for (let omega = -80; omega <= 80; omega += 0.37) {
        for (const y of [1, -1]) {
          expectRoot(y, omega, V);
          n++;
        }
      }
    }
    expect(n).toBe(29 * 433 * 2);
  });

  it('is the minimiser: the proximal objective is larger a little to either side', () => {
    const obj = (y: number, omega: number, V: number, x: number) =>
      (x - omega) ** 2 / (2 * V) + Math.log1p(Math.exp(-y * x));
    for (const [y, omega, V] of [
      [1, -3, 25],
      [-1, 2.8, 40],
      [1, 0.4, 0.5],
    ] as const) {
      const x = logisticProximal(y, omega, V);
      const f = obj(y, omega, V, x);
      expect(obj(y, omega, V, x + 1e-4)).toBeGreaterThan(f);
      expect(obj(y, omega, V, x - 1e-4)).toBeGreaterThan(f);
    }
  });

  it('raises with its inputs on bad arguments', () => {
    expect(() => logisticProximal(0, 1, 1)).toThrow(ProximalError);
    expect(() => logisticProximal(1, 1, -2)).toThrow(/V must be positive.*-2/);
    expect(() => logisticProximal(1, Number.NaN, 2)).toThrow(/omega must be finite/);
  });
});

describe('monotoneRoot', () => {
  it('bisects whenever Newton fails to halve the bracket, and converges where Newton alone cycles', () => {
    // h(x) = atan(x): Newton from |x| > 1.39 diverges, from 1.3917 it cycles ±1.3917 forever.
    let evaluations = 0;
    const x = monotoneRoot(
      (t) => {
        evaluations++;
        return { h: Math.atan(t), dh: 1 / (1 + t * t) };
      },
      -10,
      1.3917452002707,
      -1.3917452002707,
      1e-14,
    );
    expect(Math.abs(x)).toBeLessThan(1e-14);
    expect(evaluations).toBeLessThan(40);
  });

  it('raises (with the inputs) rather than return an unconverged point', () => {
    const run = () =>
      monotoneRoot((t) => ({ h: t - 0.3, dh: 0 }), 0, 1, 0.9, 1e-15, {
        maxEvaluations: 5,
        context: 'test',
        inputs: { a: 7 },
      });
    expect(run).toThrow(ProximalError);
    expect(run).toThrow(/test: no root.*a = 7/);
    try {
      run();
    } catch (err) {
      expect((err as ProximalError).inputs.a).toBe(7);
    }
    expect(() =>
      monotoneRoot(() => ({ h: Number.NaN, dh: 1 }), 0, 1, 0.5, 1e-12, { context: 'nan' }),
    ).toThrow(/nan: the function is NaN/);
  });
});

describe('GCM logistic fixed point with the robust proximal step', () => {
  it('converges at α = 0.071 and 0.254 (linspace(0.01, 3, 50)) for erf random features, λ = 0.01, cold or warm', () => {
    // Hidden-manifold features (d = 200, p = 400) with a teacher linear in the latent. From the
    // cold start the iteration passes V ≈ 20–100 where the old proximal step returned points with
    // residuals of 10–280, and it never converged at these two α (10 000 iterations).
    const d = 200;
    const p = 400;
    const rng = createRng(2);
    const features = { rows: d, cols: p, data: Float64Array.from(rng.normalArray(d * p)) };
    const cov = randomFeaturesCovariances(features, 'erf');
    const s = gcmSpectrum({ ...cov, theta: Float64Array.from(rng.normalArray(d)) });
    const alphas = Array.from({ length: 5 }, (_, i) => 0.01 + (i * 2.99) / 49);
    let init: { V: number; q: number; m: number } | undefined;
    for (const alpha of alphas) {
      const warm = solveGcm(
        s,
        { task: 'logistic', alpha, lambda: 0.01 },
        { tolerance: 1e-11, ...(init ? { init } : {}) },
      );
      const cold = solveGcm(s, { task: 'logistic', alpha, lambda: 0.01 }, { tolerance: 1e-11 });
      expect(warm.converged && cold.converged).toBe(true);
      expect(Math.abs(warm.testError - cold.testError)).toBeLessThan(1e-8);
      expect(Math.abs(warm.q - cold.q) / cold.q).toBeLessThan(1e-7);
      init = { V: warm.V, q: warm.q, m: warm.m };
    }
  });
});
