import { createRng } from '@transferlab/core';
import { correlatedHiddenManifold } from '@transferlab/datasets';
import { describe, expect, it } from 'vitest';
import {
  estimateFixedFeatureCovariances,
  fitReadout,
  gaussianSurrogateErrors,
  gcmPredictor,
  readoutError,
} from './analytic.js';

describe('estimateFixedFeatureCovariances', () => {
  it('recovers the exact second moments of erf features of the latent (Ω, Φ, Ψ)', () => {
    // The CHMM input x = erf(Fᵀc/√D) is itself a fixed feature map of the latent, with
    // pre-activations h = Fᵀc/√D exactly Gaussian (Σ = FᵀF/D), so its moments are known in
    // closed form: E erf(h_i)erf(h_j) = (2/π) arcsin(2Σ_ij/√((1+2Σ_ii)(1+2Σ_jj))), and by
    // Stein's lemma E erf(h_i) c = E erf'(h_i) F_i/√D with E erf'(h_i) = (2/√π)/√(1+2Σ_ii).
    const D = 20;
    const N = 12;
    const M = 40_000;
    const model = correlatedHiddenManifold({ D, N, activation: 'erf', seed: 4 });
    const s = model.source.sampleWithLatent(M, 'mc');
    const cov = estimateFixedFeatureCovariances({
      features: s.dataset.x,
      latent: s.latent,
      samples: M,
      theta: model.matrices.thetaS,
    });
    expect(cov.omega.rows).toBe(N);
    expect(cov.phi.rows).toBe(N);
    expect(cov.phi.cols).toBe(D);
    expect(cov.psi.rows).toBe(D);
    const F = model.matrices.Fs.data;
    const sigma = (i: number, j: number) => {
      let v = 0;
      for (let d = 0; d < D; d++) v += (F[d * N + i] as number) * (F[d * N + j] as number);
      return v / D;
    };
    // Monte Carlo sd of each entry ≤ √(E x⁴/M) < 1/√M = 0.005; the bounds are ≈ 4 sd.
    let worstOmega = 0;
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < N; j++) {
        const exact =
          (2 / Math.PI) *
          Math.asin((2 * sigma(i, j)) / Math.sqrt((1 + 2 * sigma(i, i)) * (1 + 2 * sigma(j, j))));
        worstOmega = Math.max(worstOmega, Math.abs((cov.omega.data[i * N + j] as number) - exact));
        expect(cov.omega.data[i * N + j]).toBe(cov.omega.data[j * N + i]);
      }
    }
    expect(worstOmega).toBeLessThan(0.02);
    let worstPhi = 0;
    for (let i = 0; i < N; i++) {
      const slope = 2 / Math.sqrt(Math.PI) / Math.sqrt(1 + 2 * sigma(i, i));
      for (let d = 0; d < D; d++) {
        const exact = (slope * (F[d * N + i] as number)) / Math.sqrt(D);
        worstPhi = Math.max(worstPhi, Math.abs((cov.phi.data[i * D + d] as number) - exact));
      }
    }
    expect(worstPhi).toBeLessThan(0.02);
    let worstPsi = 0;
    for (let a = 0; a < D; a++)
      for (let b = 0; b < D; b++)
        worstPsi = Math.max(
          worstPsi,
          Math.abs((cov.psi.data[a * D + b] as number) - (a === b ? 1 : 0)),
        );
    expect(worstPsi).toBeLessThan(0.03);
    expect(cov.theta).toEqual(model.matrices.thetaS);
  });

  it('checks its inputs', () => {
    expect(() =>
      estimateFixedFeatureCovariances({
        features: [1, 2, 3],
        latent: [1, 2],
        samples: 2,
        theta: [1],
      }),
    ).toThrow(/not a multiple of 2 samples/);
    expect(() =>
      estimateFixedFeatureCovariances({
        features: [1, 2],
        latent: [1, 2, 3],
        samples: 2,
        theta: [1],
      }),
    ).toThrow(/expected 2 samples × D = 1/);
  });
});

describe('readout', () => {
  const rng = createRng(1);
  const n = 60;
  const K = 8;
  const feats = rng.normalArray(n * K);
  const ys = Float32Array.from({ length: n }, (_, i) =>
    (feats[i * K] as number) + 0.3 * rng.normal() >= 0 ? 1 : -1,
  );

  it('square loss: ŵ solves (XᵀX/K + λI)w = Xᵀy/√K', () => {
    const lambda = 0.3;
    const w = fitReadout(feats, ys, n, K, lambda, 'square');
    for (let a = 0; a < K; a++) {
      let lhs = lambda * (w[a] as number);
      let rhs = 0;
      for (let mu = 0; mu < n; mu++) {
        let pred = 0;
        for (let b = 0; b < K; b++) pred += (feats[mu * K + b] as number) * (w[b] as number);
        lhs += ((feats[mu * K + a] as number) * pred) / K;
        rhs += ((feats[mu * K + a] as number) * (ys[mu] as number)) / Math.sqrt(K);
      }
      expect(lhs).toBeCloseTo(rhs, 8);
    }
    expect(readoutError(feats, ys, w)).toBeLessThan(0.2);
  });

  it('logistic loss: the gradient of Σ log(1 + e^{−y wᵀφ/√K}) + (λ/2)‖w‖² vanishes', () => {
    const lambda = 0.5;
    const w = fitReadout(feats, ys, n, K, lambda, 'logistic');
    for (let a = 0; a < K; a++) {
      let g = lambda * (w[a] as number);
      for (let mu = 0; mu < n; mu++) {
        let f = 0;
        for (let b = 0; b < K; b++) f += (feats[mu * K + b] as number) * (w[b] as number);
        const m = ((ys[mu] as number) * f) / Math.sqrt(K);
        g -=
          ((ys[mu] as number) * (feats[mu * K + a] as number)) / Math.sqrt(K) / (1 + Math.exp(m));
      }
      expect(Math.abs(g)).toBeLessThan(1e-6);
    }
  });

  it('uses only the first n rows and rejects more than there are', () => {
    const w1 = fitReadout(feats, ys, 30, K, 0.1, 'square');
    const w2 = fitReadout(feats.slice(0, 30 * K), ys.slice(0, 30), 30, K, 0.1, 'square');
    expect(w1).toEqual(w2);
    expect(() => fitReadout(feats, ys, n + 1, K, 0.1, 'square')).toThrow(/asked for 61 rows/);
  });
});

describe('gcmPredictor', () => {
  it('returns one error per α in the given order, decreasing with α for isotropic features', () => {
    // Ω = I_p, Φ = [I_p 0]ᵀ-like: the features are the first p teacher coordinates.
    const p = 20;
    const k = 40;
    const omega = new Float64Array(p * p);
    const phi = new Float64Array(p * k);
    const psi = new Float64Array(k * k);
    for (let i = 0; i < p; i++) {
      omega[i * p + i] = 1;
      phi[i * k + i] = 1;
    }
    for (let a = 0; a < k; a++) psi[a * k + a] = 1;
    const theta = new Float64Array(k).fill(1);
    const cov = {
      omega: { data: omega, rows: p, cols: p },
      phi: { data: phi, rows: p, cols: k },
      psi: { data: psi, rows: k, cols: k },
      theta,
      samples: 0,
    };
    const out = gcmPredictor.predict(cov, { alphas: [4, 0.5, 2], lambda: 0.1, loss: 'square' });
    expect(out.testErrors).toHaveLength(3);
    const [e4, e05, e2] = out.testErrors as [number, number, number];
    expect(e05).toBeGreaterThan(e2);
    expect(e2).toBeGreaterThan(e4);
    // Half of the teacher's variance is linear in these features.
    expect(out.explainedVariance).toBeCloseTo(0.5, 10);
    const logistic = gcmPredictor.predict(cov, { alphas: [2], lambda: 0.1, loss: 'logistic' });
    expect(logistic.testErrors[0]).toBeGreaterThan(0);
    expect(logistic.testErrors[0]).toBeLessThan(0.5);
  });
});

describe('gaussianSurrogateErrors', () => {
  it('reaches the best linear error arccos(√(explained/ρ))/π with many samples, and more error with few', () => {
    // Ω = I_p, Φ = [I_p 0]: the features are the first p of k latent coordinates, θ = 1, so half
    // of the teacher's variance is linear in them and the best readout errs arccos(√½)/π = 1/4.
    const p = 10;
    const k = 20;
    const omega = new Float64Array(p * p);
    const phi = new Float64Array(p * k);
    const psi = new Float64Array(k * k);
    for (let i = 0; i < p; i++) {
      omega[i * p + i] = 1;
      phi[i * k + i] = 1;
    }
    for (let a = 0; a < k; a++) psi[a * k + a] = 1;
    const cov = {
      omega: { data: omega, rows: p, cols: p },
      phi: { data: phi, rows: p, cols: k },
      psi: { data: psi, rows: k, cols: k },
      theta: new Float64Array(k).fill(1),
      samples: 0,
    };
    const rng = createRng(9);
    const errs = gaussianSurrogateErrors(cov, [10, 4000], 0.01, 'square', 6, () => rng.normal());
    expect(errs).toHaveLength(6);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const big = mean(errs.map((e) => e[1] as number));
    const small = mean(errs.map((e) => e[0] as number));
    // O(p/n) = 0.0025 above 1/4 at n = 4000
    expect(big).toBeGreaterThan(0.25);
    expect(big).toBeLessThan(0.26);
    expect(small).toBeGreaterThan(big + 0.02);
  });
});
