import { createRng, type Rng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import type { Dense } from '../linalg/dense.js';
import { matmul, matmulTransposeA, matvec } from '../linalg/dense.js';
import { gcmSpectrum, solveGcm } from './gcm.js';
import { ridgeSolve } from './monte-carlo.js';
import {
  type Activation,
  activationFunction,
  GAUSSIAN_EQUIVALENCE,
  gaussianEquivalenceCoefficients,
  randomFeaturesCovariances,
} from './random-features.js';

const ACTIVATIONS: Activation[] = ['relu', 'erf', 'tanh', 'sign'];

function gaussianMatrix(rng: Rng, rows: number, cols: number): Dense {
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal();
  return { rows, cols, data };
}

/** F (D×p) with every column rescaled to squared norm exactly D (unit-variance pre-activations). */
function normalizedFeatures(rng: Rng, d: number, p: number): Dense {
  const f = gaussianMatrix(rng, d, p);
  for (let j = 0; j < p; j++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += (f.data[i * p + j] as number) ** 2;
    const c = Math.sqrt(d / s);
    for (let i = 0; i < d; i++) f.data[i * p + j] = (f.data[i * p + j] as number) * c;
  }
  return f;
}

describe('Gaussian-equivalence coefficients', () => {
  it('the table agrees with quadrature to 1e-9 and with the published values (docs/references.md) to 6 digits', () => {
    for (const a of ACTIVATIONS) {
      const table = GAUSSIAN_EQUIVALENCE[a];
      const quad = gaussianEquivalenceCoefficients(a);
      expect(Math.abs(quad.kappa0 - table.kappa0)).toBeLessThan(1e-9);
      expect(Math.abs(quad.kappa1 - table.kappa1)).toBeLessThan(1e-9);
      expect(Math.abs(quad.kappaStar - table.kappaStar)).toBeLessThan(1e-9);
    }
    expect(GAUSSIAN_EQUIVALENCE.erf.kappaStar).toBeCloseTo(0.200364, 6);
    expect(GAUSSIAN_EQUIVALENCE.tanh.kappa1).toBeCloseTo(0.605706, 6);
    expect(GAUSSIAN_EQUIVALENCE.tanh.kappaStar).toBeCloseTo(0.165576, 6);
  });

  it('agrees with Monte Carlo (400k normal draws) within 4 standard errors', () => {
    const rng = createRng(3);
    const n = 400_000;
    const zs = new Float64Array(n);
    for (let i = 0; i < n; i++) zs[i] = rng.normal();
    for (const a of ACTIVATIONS) {
      const f = activationFunction(a);
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      for (const z of zs) {
        const v = f(z);
        s0 += v;
        s1 += z * v;
        s2 += v * v;
      }
      const k0 = s0 / n;
      const k1 = s1 / n;
      const star = Math.sqrt(s2 / n - k0 * k0 - k1 * k1);
      const t = GAUSSIAN_EQUIVALENCE[a];
      // Every statistic here has per-draw standard deviation ≤ ~1.5, so the
      // standard error is ≤ 1.5/√n ≈ 0.0024; κ* inherits a similar error.
      const se = 1.5 / Math.sqrt(n);
      expect(Math.abs(k0 - t.kappa0)).toBeLessThan(4 * se);
      expect(Math.abs(k1 - t.kappa1)).toBeLessThan(4 * se);
      expect(Math.abs(star - t.kappaStar)).toBeLessThan(4 * se);
    }
  });
});

describe('randomFeaturesCovariances', () => {
  it('Ω and Φ match Monte Carlo second moments of x = σ(Fᵀc/√D) (D = 50, p = 20)', () => {
    // Tolerance: 100k samples give entry-wise standard errors ≤ ~0.004 (second
    // moments of O(1) variables); the Gaussian-equivalence approximation of
    // the off-diagonal of Ω is off by O(ρ_ij²) ≈ κ₂²ρ²/2 with ρ = O(1/√D) ≈
    // 0.14 — ≤ 0.003 for relu, O(ρ³) for the odd activations. 0.02 covers
    // both with margin; Φ is exact (Stein's lemma), so 0.015 there.
    const rng = createRng(9);
    const d = 50;
    const p = 20;
    const f = normalizedFeatures(rng, d, p);
    const chunk = 20_000;
    const chunks = 5;
    for (const a of ['relu', 'tanh'] as const) {
      const sigma = activationFunction(a);
      const { omega, phi, psi } = randomFeaturesCovariances(f, a);
      expect(psi.rows).toBe(d);
      const mOmega = new Float64Array(p * p);
      const mPhi = new Float64Array(p * d);
      for (let b = 0; b < chunks; b++) {
        const c = gaussianMatrix(rng, chunk, d);
        const h = matmul(c, f);
        const x: Dense = { rows: chunk, cols: p, data: h.data.map((v) => sigma(v / Math.sqrt(d))) };
        const xx = matmulTransposeA(x, x);
        const xc = matmulTransposeA(x, c);
        for (let i = 0; i < p * p; i++) mOmega[i] = (mOmega[i] as number) + (xx.data[i] as number);
        for (let i = 0; i < p * d; i++) mPhi[i] = (mPhi[i] as number) + (xc.data[i] as number);
      }
      const samples = chunk * chunks;
      let worstOmega = 0;
      let worstPhi = 0;
      for (let i = 0; i < p * p; i++)
        worstOmega = Math.max(
          worstOmega,
          Math.abs((mOmega[i] as number) / samples - (omega.data[i] as number)),
        );
      for (let i = 0; i < p * d; i++)
        worstPhi = Math.max(
          worstPhi,
          Math.abs((mPhi[i] as number) / samples - (phi.data[i] as number)),
        );
      console.log(
        `${a}: max |Ω_MC − Ω| = ${worstOmega.toFixed(4)}, max |Φ_MC − Φ| = ${worstPhi.toFixed(4)}`,
      );
      expect(worstOmega).toBeLessThan(0.02);
      expect(worstPhi).toBeLessThan(0.015);
    }
  });

  it('GCM with these covariances predicts actual erf random-features ridge within 8% (α = 2)', () => {
    // End-to-end Gaussian equivalence: D = 100, p = 200, n = 400, linear
    // teacher on the latent plus noise, F with i.i.d. N(0, 1) entries. Risk
    // measured on 2000 fresh test points per draw. Measured per-draw standard
    // deviation ≈ 6% (fit fluctuation O(1/√p) plus test-set noise √(2/2000)),
    // so 12 draws give a ≈1.8% standard error; on top, the Gaussian
    // equivalence itself has O(1/√D) corrections at this size (we measured
    // +3…+7% at D = 100 for α ∈ [0.25, 2], −2% at D = 200). 8% covers both.
    const rng = createRng(17);
    const d = 100;
    const p = 200;
    const f = gaussianMatrix(rng, d, p);
    const theta = new Float64Array(d);
    for (let i = 0; i < d; i++) theta[i] = rng.normal();
    const cov = randomFeaturesCovariances(f, 'erf');
    const spectrum = gcmSpectrum({ ...cov, theta });
    const sigma = activationFunction('erf');
    const lambda = 0.05;
    const noise = 0.1;
    const features = (cMat: Dense): Dense => {
      const h = matmul(cMat, f);
      const s = 1 / Math.sqrt(d);
      return { rows: h.rows, cols: h.cols, data: h.data.map((v) => sigma(v * s) / Math.sqrt(p)) };
    };
    const alpha = 2;
    const n = alpha * p;
    const nTest = 2000;
    const risks: number[] = [];
    for (let draw = 0; draw < 12; draw++) {
      const cTrain = gaussianMatrix(rng, n, d);
      const yTrain = matvec(cTrain, theta).map(
        (v) => v / Math.sqrt(d) + Math.sqrt(noise) * rng.normal(),
      );
      const w = ridgeSolve(features(cTrain), yTrain, lambda);
      const cTest = gaussianMatrix(rng, nTest, d);
      const pred = matvec(features(cTest), w);
      const target = matvec(cTest, theta);
      let mse = 0;
      for (let i = 0; i < nTest; i++)
        mse += ((pred[i] as number) - (target[i] as number) / Math.sqrt(d)) ** 2;
      risks.push(mse / nTest);
    }
    const measured = risks.reduce((a, b) => a + b, 0) / risks.length;
    const r = solveGcm(spectrum, { task: 'ridge', alpha, lambda, noiseVariance: noise });
    const gap = Math.abs(measured - r.testError) / r.testError;
    console.log(
      `erf random features α=${alpha}: GCM ${r.testError.toFixed(4)} measured ${measured.toFixed(4)} (gap ${(100 * gap).toFixed(2)}%)`,
    );
    expect(gap).toBeLessThan(0.08);
  });

  it('rejects unknown activations', () => {
    expect(() => randomFeaturesCovariances([[1]], 'gelu' as Activation)).toThrow(
      /unknown activation 'gelu'/,
    );
    expect(() => activationFunction('gelu' as Activation)).toThrow(/unknown activation/);
  });
});
