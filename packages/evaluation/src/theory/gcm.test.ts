import { createRng, type Rng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { type Dense, identity, matmul, matvec, transpose } from '../linalg/dense.js';
import {
  GcmConvergenceError,
  gcmLearningCurve,
  gcmSpectrum,
  gcmSpectrumFromEigen,
  logisticProximal,
  pmOneTeacherHats,
  solveGcm,
  solveGcmFromCovariances,
} from './gcm.js';
import { logisticRidgeFit, ridgeSolve } from './monte-carlo.js';

/**
 * Marchenko–Pastur ridge risk for isotropic features (Ω = Φ = Ψ = I):
 * with β̂ = (XᵀX/n + λ'I)⁻¹Xᵀy/n, aspect ratio γ = p/n, ‖β₀‖² = ρ and noise Δ,
 *   bias = ρ λ'² m'(−λ'),  variance = Δ γ (m(−λ') − λ' m'(−λ')),
 * where m(z) is the Stieltjes transform of the MP law, the root of
 * γ z m² − (1 − γ − z) m + 1 = 0 that is positive at z = −λ'.
 */
function marchenkoPasturRidgeRisk(gamma: number, lambdaStd: number, rho: number, noise: number) {
  const z = -lambdaStd;
  const a = 1 - gamma - z;
  const m = (a - Math.sqrt(a * a - 4 * gamma * z)) / (2 * gamma * z);
  // differentiate γ z m² − (1 − γ − z) m + 1 = 0 in z
  const dm = -(gamma * m * m + m) / (2 * gamma * z * m - a);
  const bias = rho * lambdaStd * lambdaStd * dm;
  const variance = noise * gamma * (m - lambdaStd * dm);
  return bias + variance;
}

function gaussianMatrix(rng: Rng, rows: number, cols: number, scale = 1): Dense {
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = scale * rng.normal();
  return { rows, cols, data };
}

/**
 * A structured joint Gaussian model: u = √ψ ⊙ g (Ψ = diag ψ, a spread-out
 * spectrum), x = A u + ν ξ with A = G/√k a fixed Gaussian mixing matrix, so
 * Φ = AΨ and Ω = AΨAᵀ + ν²I (not diagonal, not commuting with ΦθθᵀΦᵀ).
 */
function structuredModel(p: number, k: number, seed: number) {
  const rng = createRng(seed);
  const psiDiag = new Float64Array(k);
  for (let i = 0; i < k; i++) psiDiag[i] = 0.2 + 1.8 * (1 - i / k) ** 2;
  const a = gaussianMatrix(rng, p, k, 1 / Math.sqrt(k));
  const nu2 = 0.5;
  const psi: Dense = { rows: k, cols: k, data: new Float64Array(k * k) };
  for (let i = 0; i < k; i++) psi.data[i * k + i] = psiDiag[i] as number;
  const phi = matmul(a, psi);
  const omega = matmul(phi, transpose(a));
  for (let i = 0; i < p; i++) omega.data[i * p + i] = (omega.data[i * p + i] as number) + nu2;
  const theta = new Float64Array(k);
  for (let i = 0; i < k; i++) theta[i] = rng.normal();
  const sample = (r: Rng, n: number) => {
    const u: Dense = { rows: n, cols: k, data: new Float64Array(n * k) };
    for (let s = 0; s < n; s++)
      for (let i = 0; i < k; i++) u.data[s * k + i] = Math.sqrt(psiDiag[i] as number) * r.normal();
    const x = matmul(u, transpose(a));
    const nu = Math.sqrt(nu2);
    for (let i = 0; i < x.data.length; i++) x.data[i] = (x.data[i] as number) + nu * r.normal();
    const field = matvec(u, theta).map((v) => v / Math.sqrt(k));
    return { x, field };
  };
  return { omega, phi, psi, theta, sample };
}

/** Exact population order parameters of a fitted ŵ: q = ŵᵀΩŵ/p, m = ŵᵀΦθ/√(pk). */
function overlapsOf(w: Float64Array, omega: Dense, phi: Dense, theta: Float64Array) {
  const p = omega.rows;
  const k = phi.cols;
  const ow = matvec(omega, w);
  const pt = matvec(phi, theta);
  let q = 0;
  let m = 0;
  for (let i = 0; i < p; i++) {
    q += (w[i] as number) * (ow[i] as number);
    m += (w[i] as number) * (pt[i] as number);
  }
  return { q: q / p, m: m / Math.sqrt(p * k) };
}

function scaleRows(x: Dense, s: number): Dense {
  return { rows: x.rows, cols: x.cols, data: x.data.map((v) => v * s) };
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Standard error of the mean. */
function stdErr(xs: number[]): number {
  const mu = mean(xs);
  const v = xs.reduce((a, b) => a + (b - mu) ** 2, 0) / (xs.length - 1);
  return Math.sqrt(v / xs.length);
}

describe('GCM fixed point: isotropic features against Marchenko–Pastur', () => {
  const p = 200;
  const spectrum = gcmSpectrum({
    omega: identity(p),
    phi: identity(p),
    psi: identity(p),
    theta: Array.from({ length: p }, (_, i) => (i % 2 === 0 ? 1.2 : 0.8)),
  });

  it('ridge risk equals the closed-form MP risk for several α, λ, Δ', () => {
    const rho = spectrum.rho; // (1.44 + 0.64)/2 = 1.04
    expect(rho).toBeCloseTo(1.04, 12);
    for (const alpha of [0.3, 0.5, 1, 2, 4]) {
      for (const lambda of [0.01, 0.1, 1]) {
        for (const noise of [0, 0.25]) {
          const r = solveGcm(
            spectrum,
            { task: 'ridge', alpha, lambda, noiseVariance: noise },
            { tolerance: 1e-13 },
          );
          expect(r.converged).toBe(true);
          // GCM ridge Σ(y − wᵀx/√p)² + λ‖w‖² is standard ridge with λ' = λ/α on β = w/√p.
          const expected = marchenkoPasturRidgeRisk(1 / alpha, lambda / alpha, rho, noise);
          expect(Math.abs(r.testError - expected)).toBeLessThan(1e-9 * expected);
        }
      }
    }
  });

  it('matches Monte Carlo ridge fits (p = 200) within 3% at α = 0.5 and α = 2', () => {
    // Tolerance: the finite-size risk of one draw fluctuates by O(1/√p) relative
    // (measured: 6–9% standard deviation at p = 200) around its limit, plus an
    // O(1/p) bias; averaging 30 draws brings the standard error to ~1.5%, so 3%
    // is two standard errors.
    const rng = createRng(11);
    const theta = Float64Array.from({ length: p }, (_, i) => (i % 2 === 0 ? 1.2 : 0.8));
    const lambda = 0.1;
    const noise = 0.25;
    for (const alpha of [0.5, 2]) {
      const n = Math.round(alpha * p);
      const errs: number[] = [];
      const trains: number[] = [];
      for (let draw = 0; draw < 30; draw++) {
        const x = gaussianMatrix(rng, n, p);
        const y = matvec(x, theta).map((v) => v / Math.sqrt(p) + Math.sqrt(noise) * rng.normal());
        const w = ridgeSolve(scaleRows(x, 1 / Math.sqrt(p)), y, lambda);
        let q = 0;
        let m = 0;
        for (let i = 0; i < p; i++) {
          q += (w[i] as number) ** 2;
          m += (w[i] as number) * (theta[i] as number);
        }
        errs.push(spectrum.rho + q / p - (2 * m) / p);
        const pred = matvec(x, w).map((v) => v / Math.sqrt(p));
        trains.push(mean(Array.from(pred, (v, i) => ((y[i] as number) - v) ** 2)));
      }
      const r = solveGcm(spectrum, { task: 'ridge', alpha, lambda, noiseVariance: noise });
      const gap = Math.abs(mean(errs) - r.testError) / r.testError;
      const trainGap = Math.abs(mean(trains) - r.trainLoss) / r.trainLoss;
      console.log(
        `MP ridge α=${alpha}: analytic ${r.testError.toFixed(4)} MC ${mean(errs).toFixed(4)} ± ${stdErr(errs).toFixed(4)} (gap ${(100 * gap).toFixed(2)}%); train analytic ${r.trainLoss.toFixed(4)} MC ${mean(trains).toFixed(4)} ± ${stdErr(trains).toFixed(4)} (gap ${(100 * trainGap).toFixed(2)}%)`,
      );
      expect(gap).toBeLessThan(0.03);
      expect(trainGap).toBeLessThan(0.03);
    }
  });
});

describe('GCM fixed point: structured covariances against Monte Carlo', () => {
  const p = 200;
  const k = 200;
  const model = structuredModel(p, k, 5);
  const spectrum = gcmSpectrum(model);

  it('ridge test MSE within 4% at α ∈ {0.5, 2}, training MSE within 3 standard errors', () => {
    // Same finite-size argument as for the isotropic case: O(1/√p) per draw
    // (measured: 9% standard deviation at α = 0.5 near interpolation, 4.5% at
    // α = 2); 30 / 10 draws → ~1.5% standard error; 4% is over two of them.
    const rng = createRng(21);
    const lambda = 0.05;
    const noise = 0.1;
    for (const alpha of [0.5, 2]) {
      const n = Math.round(alpha * p);
      const errs: number[] = [];
      const trains: number[] = [];
      for (let draw = 0; draw < (alpha < 1 ? 30 : 10); draw++) {
        const { x, field } = model.sample(rng, n);
        const y = field.map((v) => v + Math.sqrt(noise) * rng.normal());
        const xs = scaleRows(x, 1 / Math.sqrt(p));
        const w = ridgeSolve(xs, y, lambda);
        const { q, m } = overlapsOf(w, model.omega, model.phi, model.theta);
        errs.push(spectrum.rho + q - 2 * m);
        const pred = matvec(xs, w);
        trains.push(mean(Array.from(pred, (v, i) => ((y[i] as number) - v) ** 2)));
      }
      const r = solveGcm(spectrum, { task: 'ridge', alpha, lambda, noiseVariance: noise });
      const gap = Math.abs(mean(errs) - r.testError) / r.testError;
      const trainGap = Math.abs(mean(trains) - r.trainLoss) / r.trainLoss;
      console.log(
        `structured ridge α=${alpha}: analytic ${r.testError.toFixed(4)} MC ${mean(errs).toFixed(4)} ± ${stdErr(errs).toFixed(4)} (gap ${(100 * gap).toFixed(2)}%); train ${r.trainLoss.toFixed(4)} vs ${mean(trains).toFixed(4)} ± ${stdErr(trains).toFixed(4)} (gap ${(100 * trainGap).toFixed(2)}%)`,
      );
      expect(gap).toBeLessThan(0.04);
      // The training MSE is small and noisier at α = 0.5 (~6% standard error):
      // allow three standard errors plus 1% for the O(1/p) finite-size bias.
      expect(Math.abs(mean(trains) - r.trainLoss)).toBeLessThan(
        3 * stdErr(trains) + 0.01 * r.trainLoss,
      );
    }
  });

  it('square-loss classification error within 0.015 absolute (≈5% relative) at α ∈ {0.5, 2}', () => {
    // The error arccos(m/√(ρq))/π of one draw fluctuates by O(1/√p) in m/√(ρq);
    // 10 draws at p = 200 give a standard error ≈ 0.005–0.007.
    const rng = createRng(31);
    const lambda = 0.1;
    for (const alpha of [0.5, 2]) {
      const n = Math.round(alpha * p);
      const errs: number[] = [];
      for (let draw = 0; draw < 10; draw++) {
        const { x, field } = model.sample(rng, n);
        const y = field.map((v) => (v >= 0 ? 1 : -1));
        const w = ridgeSolve(scaleRows(x, 1 / Math.sqrt(p)), y, lambda);
        const { q, m } = overlapsOf(w, model.omega, model.phi, model.theta);
        errs.push(Math.acos(m / Math.sqrt(spectrum.rho * q)) / Math.PI);
      }
      const r = solveGcm(spectrum, { task: 'square-classification', alpha, lambda });
      console.log(
        `structured square-classification α=${alpha}: analytic ${r.testError.toFixed(4)} MC ${mean(errs).toFixed(4)} ± ${stdErr(errs).toFixed(4)}`,
      );
      expect(Math.abs(mean(errs) - r.testError)).toBeLessThan(0.015);
    }
  });
});

describe('GCM fixed point: logistic regression', () => {
  it('the proximal operator solves x = ω + V y σ(−yx)', () => {
    for (const [y, omega, V] of [
      [1, 0.3, 2],
      [-1, 1.5, 0.1],
      [1, -4, 1000],
      [-1, 8, 50],
    ] as const) {
      const x = logisticProximal(y, omega, V);
      const s = 1 / (1 + Math.exp(y * x));
      expect(Math.abs(x - omega - V * y * s)).toBeLessThan(1e-10 * (1 + Math.abs(x)));
    }
  });

  it('the quadrature machinery with the square loss reproduces the closed-form hats', () => {
    // Exercises the ±1-teacher Gaussian integrals (Z₀, ∂Z₀, ξ quadrature) on a
    // loss whose hats are known in closed form.
    for (const [V, q, m, noise] of [
      [0.7, 0.5, 0.3, 0],
      [3, 1.2, 0.6, 0.2],
    ] as const) {
      const rho = 1.1;
      const alpha = 1.7;
      const h = pmOneTeacherHats({ V, q, m }, rho, alpha, noise, 96, 'square');
      const c = Math.sqrt(2 / (Math.PI * (rho + noise)));
      expect(h.Vhat).toBeCloseTo(alpha / (1 + V), 10);
      expect(h.qhat).toBeCloseTo((alpha * (1 + q - 2 * c * m)) / (1 + V) ** 2, 10);
      expect(h.mhatS).toBeCloseTo((alpha * c) / (1 + V), 10);
    }
  });

  it('matches Monte Carlo logistic fits (p = 100) at α ∈ {0.5, 2}: error within 0.02, train loss within 5%', () => {
    // p = 100 keeps the Newton fits cheap; the per-draw fluctuation of the
    // error is O(1/√p) ≈ 0.03, 8 draws → standard error ≈ 0.01.
    const p = 100;
    const model = structuredModel(p, p, 7);
    const spectrum = gcmSpectrum(model);
    const rng = createRng(41);
    const lambda = 0.1;
    for (const alpha of [0.5, 2]) {
      const n = Math.round(alpha * p);
      const errs: number[] = [];
      const trains: number[] = [];
      for (let draw = 0; draw < 8; draw++) {
        const { x, field } = model.sample(rng, n);
        const y = field.map((v) => (v >= 0 ? 1 : -1));
        const fit = logisticRidgeFit(x, y, lambda, 1 / Math.sqrt(p));
        const { q, m } = overlapsOf(fit.weights, model.omega, model.phi, model.theta);
        errs.push(Math.acos(m / Math.sqrt(spectrum.rho * q)) / Math.PI);
        trains.push(fit.trainLoss);
      }
      const r = solveGcm(spectrum, { task: 'logistic', alpha, lambda });
      console.log(
        `logistic α=${alpha}: error analytic ${r.testError.toFixed(4)} MC ${mean(errs).toFixed(4)} ± ${stdErr(errs).toFixed(4)}; train loss ${r.trainLoss.toFixed(4)} vs ${mean(trains).toFixed(4)} ± ${stdErr(trains).toFixed(4)} (${r.iterations} iterations)`,
      );
      expect(Math.abs(mean(errs) - r.testError)).toBeLessThan(0.02);
      expect(Math.abs(mean(trains) - r.trainLoss) / r.trainLoss).toBeLessThan(0.05);
    }
  });
});

describe('GCM inputs, errors and learning curves', () => {
  const good = {
    omega: [
      [2, 0.5],
      [0.5, 1],
    ],
    phi: [
      [1, 0, 0],
      [0, 0.5, 0],
    ],
    psi: [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ],
    theta: [1, -1, 0.5],
  };

  it('names the mismatched dimension', () => {
    expect(() => gcmSpectrum({ ...good, theta: [1, 2] })).toThrow(/theta must have length k = 3/);
    expect(() => gcmSpectrum({ ...good, psi: [[1]] })).toThrow(/psi must be k×k with k = 3/);
    expect(() =>
      gcmSpectrum({
        ...good,
        phi: [
          [1, 0, 0],
          [0, 1, 0],
          [0, 0, 1],
        ],
      }),
    ).toThrow(/phi must be p×k with p = 2/);
    expect(() => gcmSpectrum({ ...good, omega: [[1, 2, 3]] })).toThrow(/omega must be square/);
  });

  it('rejects non-PSD and inconsistent covariances', () => {
    expect(() =>
      gcmSpectrum({
        ...good,
        omega: [
          [1, 2],
          [2, 1],
        ],
      }),
    ).toThrow(/omega is not positive semi-definite/);
    expect(() =>
      gcmSpectrum({
        ...good,
        psi: [
          [1, 0, 0],
          [0, -1, 0],
          [0, 0, 1],
        ],
      }),
    ).toThrow(/psi is not positive semi-definite/);
    expect(() =>
      gcmSpectrum({
        ...good,
        omega: [
          [1, 0.3],
          [0.2, 1],
        ],
      }),
    ).toThrow(/omega is not symmetric/);
    // Φ too large for Ω: the features would explain more than the teacher's variance.
    expect(() =>
      gcmSpectrum({
        ...good,
        omega: [
          [0.01, 0],
          [0, 0.01],
        ],
      }),
    ).toThrow(/not positive semi-definite: the features would explain/);
    // Ω singular along a direction the teacher correlates with.
    expect(() =>
      gcmSpectrum({
        ...good,
        omega: [
          [2, 0],
          [0, 0],
        ],
      }),
    ).toThrow(/outside the range of omega/);
    expect(() => gcmSpectrum({ ...good, theta: [0, 0, 0] })).toThrow(/must be positive/);
  });

  it('validates the problem and reports non-convergence with the residual', () => {
    const s = gcmSpectrum(good);
    expect(() => solveGcm(s, { task: 'ridge', alpha: 1, lambda: 0 })).toThrow(
      /lambda must be positive/,
    );
    expect(() => solveGcm(s, { task: 'ridge', alpha: -1, lambda: 1 })).toThrow(/alpha/);
    expect(() => solveGcm(s, { task: 'hinge' as 'ridge', alpha: 1, lambda: 1 })).toThrow(
      /unknown task 'hinge'/,
    );
    let caught: unknown;
    try {
      solveGcm(s, { task: 'ridge', alpha: 1, lambda: 0.01 }, { maxIterations: 3 });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(GcmConvergenceError);
    expect((caught as GcmConvergenceError).message).toMatch(/residual .* > tolerance/);
    expect((caught as GcmConvergenceError).residual).toBeGreaterThan(1e-9);
    const soft = solveGcm(
      s,
      { task: 'ridge', alpha: 1, lambda: 0.01 },
      { maxIterations: 3, throwOnNonConvergence: false },
    );
    expect(soft.converged).toBe(false);
  });

  it('an eigen-spectrum input gives the same answer as the covariances; curves warm-start', () => {
    const s = gcmSpectrum(good);
    const fromEigen = gcmSpectrumFromEigen({
      omegaEigenvalues: s.omegaEigenvalues,
      projections: s.projections,
      rho: s.rho,
      k: s.k,
    });
    const a = solveGcm(s, { task: 'square-classification', alpha: 3, lambda: 0.1 });
    const b = solveGcm(fromEigen, { task: 'square-classification', alpha: 3, lambda: 0.1 });
    expect(b.testError).toBeCloseTo(a.testError, 10);
    const c = solveGcmFromCovariances(good, {
      task: 'square-classification',
      alpha: 3,
      lambda: 0.1,
    });
    expect(c.testError).toBeCloseTo(a.testError, 10);
    const alphas = [0.5, 1, 2, 4, 8];
    const curve = gcmLearningCurve(s, alphas, { task: 'logistic', lambda: 0.1 });
    alphas.forEach((alpha, i) => {
      const cold = solveGcm(s, { task: 'logistic', alpha, lambda: 0.1 });
      const warm = curve[i] as { testError: number; iterations: number };
      expect(warm.testError).toBeCloseTo(cold.testError, 7);
      if (i > 0) expect(warm.iterations).toBeLessThan(cold.iterations);
    });
  });
});
