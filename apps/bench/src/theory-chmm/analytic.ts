/**
 * Fixed feature maps on the CHMM target, and their analytic learning curves
 * through the Gaussian covariate model (GCM).
 *
 * ## The readout and its GCM
 *
 * A frozen first layer W (learned on the source, or random) gives student
 * features φ(x) = σ(Wᵀx/√N) ∈ R^K for a target input x = σ(F_tᵀc/√D). Only
 * the readout w is trained, on n target examples:
 *
 *   ŵ = argmin_w Σ_μ ℓ(y_μ, wᵀφ_μ/√K) + (λ/2)‖w‖²,
 *
 * ℓ = ½(y − ŷ)² ('square', closed form) or log(1 + e^{−yŷ}) ('logistic'),
 * and the test error is P(sign(ŵᵀφ) ≠ y) on fresh target data.
 *
 * The labels are y = sign(z₀), z₀ = θ_tᵀc/√D: the teacher acts on the latent
 * c, so in the GCM the **teacher features are the latent itself**, u = c
 * (k = D), with teacher weights θ = θ_t. The GCM takes (φ, u) jointly
 * Gaussian with the same second moments:
 *
 *   Ω = E[φφᵀ]  (K×K),   Φ = E[φ cᵀ]  (K×D),   Ψ = E[ccᵀ] = I_D,
 *   ρ = θᵀΨθ/D = ‖θ_t‖²/D,
 *
 * p = K, α = n/K, and the same λ (the solver's loss is Σℓ + (λ/2)‖w‖² with
 * fields wᵀx/√p — the convention above). Only Φθ/√D = E[φ z₀] enters the
 * equations, the covariance of each feature with the teacher field. Ω is the
 * second moment (no centring): the readout has no bias, and for odd
 * activations (erf, tanh, sign) every mean is zero anyway.
 *
 * All three are estimated by Monte Carlo from M target samples (φ_μ, c_μ),
 * Ψ included: the empirical joint second-moment matrix of (φ, c) is then
 * exactly positive semi-definite, so the features can never appear to
 * explain more than all of the teacher's variance (which an exact Ψ = I_D
 * with a noisy Φ can). The estimates move the predicted error by O(K/M)
 * relative (second order in the sampling noise of Ω, Φ).
 *
 * That this Gaussian model predicts the error of the real, non-Gaussian
 * features is the Gaussian-equivalence property the paper relies on; the
 * tests check it for random features at moderate sizes.
 */
import {
  type GcmSpectrum,
  gcmSpectrum,
  logisticRidgeFit,
  ridgeSolve,
  solveGcm,
} from '@transferlab/evaluation';
import type { ChmmLoss } from './network.js';

/** A row-major float64 matrix. */
export interface Matrix {
  data: Float64Array;
  rows: number;
  cols: number;
}

export interface FixedFeatureCovariances {
  /** Ω = E[φφᵀ], K×K. */
  omega: Matrix;
  /** Φ = E[φcᵀ], K×D. */
  phi: Matrix;
  /** Ψ = E[ccᵀ], D×D (empirical, ≈ I_D). */
  psi: Matrix;
  /** Teacher θ_t (length D). */
  theta: Float64Array;
  /** Number of Monte Carlo samples. */
  samples: number;
}

/**
 * Monte Carlo second moments of features φ (M×K, row-major) and latents c
 * (M×D, row-major) from the same M samples, in float64.
 */
export function estimateFixedFeatureCovariances(args: {
  features: ArrayLike<number>;
  latent: ArrayLike<number>;
  samples: number;
  theta: ArrayLike<number>;
}): FixedFeatureCovariances {
  const M = args.samples;
  const D = args.theta.length;
  if (!(Number.isInteger(M) && M > 0))
    throw new Error(
      `estimateFixedFeatureCovariances: samples must be a positive integer, got ${M}`,
    );
  if (args.features.length % M !== 0)
    throw new Error(
      `estimateFixedFeatureCovariances: features has ${args.features.length} values, not a multiple of ${M} samples`,
    );
  if (args.latent.length !== M * D)
    throw new Error(
      `estimateFixedFeatureCovariances: latent has ${args.latent.length} values, expected ${M} samples × D = ${D}`,
    );
  const K = args.features.length / M;
  const omega = new Float64Array(K * K);
  const phi = new Float64Array(K * D);
  const psi = new Float64Array(D * D);
  const f = new Float64Array(K);
  const c = new Float64Array(D);
  for (let mu = 0; mu < M; mu++) {
    for (let i = 0; i < K; i++) f[i] = args.features[mu * K + i] as number;
    for (let d = 0; d < D; d++) c[d] = args.latent[mu * D + d] as number;
    for (let i = 0; i < K; i++) {
      const fi = f[i] as number;
      const ro = i * K;
      for (let j = i; j < K; j++) omega[ro + j] = (omega[ro + j] as number) + fi * (f[j] as number);
      const rp = i * D;
      for (let d = 0; d < D; d++) phi[rp + d] = (phi[rp + d] as number) + fi * (c[d] as number);
    }
    for (let a = 0; a < D; a++) {
      const ca = c[a] as number;
      const ra = a * D;
      for (let b = a; b < D; b++) psi[ra + b] = (psi[ra + b] as number) + ca * (c[b] as number);
    }
  }
  const symmetrize = (m: Float64Array, n: number) => {
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        const v = (m[i * n + j] as number) / M;
        m[i * n + j] = v;
        m[j * n + i] = v;
      }
    }
  };
  symmetrize(omega, K);
  symmetrize(psi, D);
  for (let k = 0; k < phi.length; k++) phi[k] = (phi[k] as number) / M;
  return {
    omega: { data: omega, rows: K, cols: K },
    phi: { data: phi, rows: K, cols: D },
    psi: { data: psi, rows: D, cols: D },
    theta: Float64Array.from(args.theta),
    samples: M,
  };
}

export interface FixedFeaturePrediction {
  /** Predicted test error per α (NaN where the fixed point did not converge). */
  testErrors: number[];
  /** Fraction of the teacher-field variance that is linear in the features (vᵀΩ⁻¹v/ρ). */
  explainedVariance: number;
}

/**
 * The analytic part, pluggable: anything that maps the covariances of a fixed
 * feature map and a readout problem to predicted test errors. The default is
 * the GCM fixed point of `@transferlab/evaluation`.
 */
export interface FixedFeaturePredictor {
  readonly name: string;
  predict(
    covariances: FixedFeatureCovariances,
    problem: { alphas: readonly number[]; lambda: number; loss: ChmmLoss },
  ): FixedFeaturePrediction;
}

/**
 * GCM predictor: diagonalises Ω once, then solves the fixed point for each α
 * in increasing order, warm-started from the previous solution ('square' →
 * the solver's 'square-classification', 'logistic' → 'logistic'; no label
 * noise: the CHMM labels are a deterministic sign of the teacher field).
 */
export const gcmPredictor: FixedFeaturePredictor = {
  name: 'gcm',
  predict(covariances, { alphas, lambda, loss }) {
    const spectrum: GcmSpectrum = gcmSpectrum(covariances);
    const order = alphas.map((a, i) => ({ a, i })).sort((u, v) => u.a - v.a);
    const out = new Array<number>(alphas.length).fill(Number.NaN);
    let init: { V: number; q: number; m: number } | undefined;
    for (const { a, i } of order) {
      const r = solveGcm(
        spectrum,
        { task: loss === 'square' ? 'square-classification' : 'logistic', alpha: a, lambda },
        { throwOnNonConvergence: false, ...(init ? { init } : {}) },
      );
      if (r.converged) {
        out[i] = r.testError;
        init = { V: r.V, q: r.q, m: r.m };
      }
    }
    return { testErrors: out, explainedVariance: spectrum.explainedVariance / spectrum.rho };
  },
};

/**
 * Fit the readout on the first n rows of `features` (row-major, K columns)
 * with ±1 labels: argmin Σ ℓ(y, wᵀφ/√K) + (λ/2)‖w‖². Returns w.
 */
export function fitReadout(
  features: Float32Array,
  ys: Float32Array,
  n: number,
  K: number,
  lambda: number,
  loss: ChmmLoss,
): Float64Array {
  if (n * K > features.length || n > ys.length)
    throw new Error(
      `fitReadout: asked for ${n} rows but only ${Math.min(features.length / K, ys.length)} are available`,
    );
  const data = new Float64Array(n * K);
  const y = new Float64Array(n);
  if (loss === 'square') {
    // Σ½(y − wᵀφ/√K)² + (λ/2)‖w‖² = ½(‖y − Xw‖² + λ‖w‖²) with X = φ/√K.
    const s = 1 / Math.sqrt(K);
    for (let k = 0; k < n * K; k++) data[k] = (features[k] as number) * s;
    for (let i = 0; i < n; i++) y[i] = ys[i] as number;
    return ridgeSolve({ data, rows: n, cols: K }, y, lambda);
  }
  for (let k = 0; k < n * K; k++) data[k] = features[k] as number;
  for (let i = 0; i < n; i++) y[i] = ys[i] as number;
  return logisticRidgeFit({ data, rows: n, cols: K }, y, lambda, 1 / Math.sqrt(K)).weights;
}

/** P(sign(wᵀφ) ≠ y) over the rows of `features` (sign(0) counts as +1). */
export function readoutError(features: Float32Array, ys: Float32Array, w: Float64Array): number {
  const K = w.length;
  const n = ys.length;
  let wrong = 0;
  for (let mu = 0; mu < n; mu++) {
    let s = 0;
    const base = mu * K;
    for (let i = 0; i < K; i++) s += (features[base + i] as number) * (w[i] as number);
    if ((s >= 0 ? 1 : -1) !== ys[mu]) wrong++;
  }
  return wrong / n;
}

/**
 * The readout's test error on a Gaussian surrogate of the features: (φ, c)
 * drawn jointly Gaussian with exactly the second moments `cov` (Ω, Φ, Ψ) —
 * the model the GCM solves — labels sign(θᵀc), the same readout fitted on
 * the first n of `maxN` samples, and the error of the fit computed exactly,
 * arccos(wᵀΦθ/√(wᵀΩw·θᵀΨθ))/π. Where the GCM prediction matches this but not
 * the real features, the gap is the features' non-Gaussianity (the Gaussian
 * equivalence), not the solver or finite n. Returns errors[r][ni].
 */
export function gaussianSurrogateErrors(
  cov: FixedFeatureCovariances,
  nList: readonly number[],
  lambda: number,
  loss: ChmmLoss,
  repeats: number,
  normal: () => number,
): number[][] {
  const K = cov.omega.rows;
  const D = cov.psi.rows;
  const T = K + D;
  // Cholesky of the joint second moment [[Ω, Φ], [Φᵀ, Ψ]] (tiny jitter: the empirical one is PSD).
  const L = new Float64Array(T * T);
  const joint = (i: number, j: number): number => {
    if (i < K && j < K) return cov.omega.data[i * K + j] as number;
    if (i < K) return cov.phi.data[i * D + (j - K)] as number;
    if (j < K) return cov.phi.data[j * D + (i - K)] as number;
    return cov.psi.data[(i - K) * D + (j - K)] as number;
  };
  let diag = 0;
  for (let i = 0; i < T; i++) diag = Math.max(diag, joint(i, i));
  for (let i = 0; i < T; i++)
    for (let j = 0; j <= i; j++) {
      let s = joint(i, j) + (i === j ? 1e-10 * diag : 0);
      for (let k = 0; k < j; k++) s -= (L[i * T + k] as number) * (L[j * T + k] as number);
      L[i * T + j] = i === j ? Math.sqrt(Math.max(s, 0)) : s / (L[j * T + j] as number);
    }
  const theta = cov.theta;
  const phiTheta = new Float64Array(K);
  for (let i = 0; i < K; i++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += (cov.phi.data[i * D + d] as number) * (theta[d] as number);
    phiTheta[i] = s;
  }
  let rho = 0;
  for (let a = 0; a < D; a++)
    for (let b = 0; b < D; b++)
      rho += (theta[a] as number) * (cov.psi.data[a * D + b] as number) * (theta[b] as number);
  const maxN = Math.max(...nList);
  const out: number[][] = [];
  const xi = new Float64Array(T);
  for (let r = 0; r < repeats; r++) {
    const feats = new Float32Array(maxN * K);
    const ys = new Float32Array(maxN);
    for (let mu = 0; mu < maxN; mu++) {
      for (let i = 0; i < T; i++) xi[i] = normal();
      let field = 0;
      for (let i = 0; i < T; i++) {
        let s = 0;
        for (let k = 0; k <= i; k++) s += (L[i * T + k] as number) * (xi[k] as number);
        if (i < K) feats[mu * K + i] = s;
        else field += (theta[i - K] as number) * s;
      }
      ys[mu] = field >= 0 ? 1 : -1;
    }
    out.push(
      nList.map((n) => {
        const w = fitReadout(feats, ys, n, K, lambda, loss);
        let m = 0;
        let q = 0;
        for (let i = 0; i < K; i++) {
          m += (w[i] as number) * (phiTheta[i] as number);
          let s = 0;
          for (let j = 0; j < K; j++) s += (cov.omega.data[i * K + j] as number) * (w[j] as number);
          q += (w[i] as number) * s;
        }
        const c = Math.max(-1, Math.min(1, m / Math.sqrt(q * rho)));
        return Math.acos(c) / Math.PI;
      }),
    );
  }
  return out;
}
