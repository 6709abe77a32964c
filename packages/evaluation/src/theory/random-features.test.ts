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
  twoFeatureMapCovariances,
} from './random-features.js';

const ACTIVATIONS: Activation[] = ['relu', 'erf', 'tanh', 'sign', 'linear'];

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
      // κ*² (κ* itself is √(rounding) ≈ 1e-8 for the linear map, whose κ* is 0)
      expect(Math.abs(quad.kappaStar ** 2 - table.kappaStar ** 2)).toBeLessThan(1e-9);
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
      const star = Math.sqrt(Math.max(s2 / n - k0 * k0 - k1 * k1, 0));
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

describe('twoFeatureMapCovariances (student and teacher random features on one latent)', () => {
  it('Ω, Φ, Ψ match Monte Carlo second moments for pairs of activations (d = 300, p = 12, k = 8)', () => {
    // Sampled x = σ(Fᵀc/√d), u = σ̄(F̄ᵀc/√d) over M latents; each entry's Monte Carlo sd is
    // √(Var(x_i u_j)/M) ≤ ~2/√M. The Gaussian-equivalence error of an off-diagonal entry is
    // κ₂²r²/2 ≈ 0.08 r² for relu (κ₂ = E σ(ξ)(ξ² − 1) ≠ 0) and O(r³) for odd σ, with
    // r = F_iᵀF̄_j/d ~ N(0, 1/d): at d = 300 the largest r ≈ 0.15 costs ≲ 0.6 sd (at d = 60, 2–3 sd).
    const rng = createRng(23);
    const d = 300;
    const p = 12;
    const k = 8;
    const M = 40_000;
    const F = normalizedFeatures(rng, d, p);
    const G = normalizedFeatures(rng, d, k);
    const c = gaussianMatrix(rng, M, d);
    const hs = matmul(c, F);
    const hu = matmul(c, G);
    for (const [sa, ta] of [
      ['erf', 'sign'],
      ['relu', 'tanh'],
      ['tanh', 'relu'],
      ['sign', 'linear'],
      ['linear', 'erf'],
    ] as const) {
      const fs = activationFunction(sa);
      const ft = activationFunction(ta);
      const x = hs.data.map((v) => fs(v / Math.sqrt(d)));
      const u = hu.data.map((v) => ft(v / Math.sqrt(d)));
      const cov = twoFeatureMapCovariances(
        { features: F, activation: sa },
        { features: G, activation: ta },
      );
      const worst = (a: Float64Array, aw: number, b: Float64Array, bw: number, exact: Dense) => {
        let z = 0;
        for (let i = 0; i < aw; i++)
          for (let j = 0; j < bw; j++) {
            let s = 0;
            let s2 = 0;
            for (let mu = 0; mu < M; mu++) {
              const v = (a[mu * aw + i] as number) * (b[mu * bw + j] as number);
              s += v;
              s2 += v * v;
            }
            const mean = s / M;
            // floor: sign(h)² = 1 has no spread at all
            const sd = Math.max(Math.sqrt(Math.max(s2 / M - mean * mean, 0) / M), 1e-9);
            z = Math.max(z, Math.abs(mean - (exact.data[i * bw + j] as number)) / sd);
          }
        return z;
      };
      const zo = worst(x, p, x, p, cov.omega);
      const zp = worst(x, p, u, k, cov.phi);
      const zs = worst(u, k, u, k, cov.psi);
      expect([sa, ta, zo < 4.5, zp < 4.5, zs < 4.5]).toEqual([sa, ta, true, true, true]);
    }
  });

  it('a linear teacher with F̄ = √d·I gives randomFeaturesCovariances (u = c)', () => {
    const rng = createRng(5);
    const d = 10;
    const F = normalizedFeatures(rng, d, 7);
    const eye = { rows: d, cols: d, data: new Float64Array(d * d) };
    for (let i = 0; i < d; i++) eye.data[i * d + i] = Math.sqrt(d);
    const two = twoFeatureMapCovariances(
      { features: F, activation: 'relu' },
      { features: eye, activation: 'linear' },
    );
    const one = randomFeaturesCovariances(F, 'relu');
    for (const key of ['omega', 'phi', 'psi'] as const)
      one[key].data.forEach((v, i) => {
        expect(two[key].data[i]).toBeCloseTo(v, 13);
      });
    expect(() =>
      twoFeatureMapCovariances(
        { features: F, activation: 'erf' },
        { features: { rows: 3, cols: 2, data: new Float64Array(6) }, activation: 'erf' },
      ),
    ).toThrow(/one latent/);
  });
});
