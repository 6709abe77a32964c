/**
 * Gaussian covariate model (GCM): exact high-dimensional learning curves of
 * ridge-penalised empirical risk minimisation on Gaussian features, from the
 * replica / state-evolution fixed point of Loureiro et al. 2021 (arXiv
 * 2102.08127), as used by Gerace et al. 2022 (arXiv 2106.05418) for transfer
 * with a fixed feature map.
 *
 * ## Model and conventions
 *
 * Teacher features u ∈ R^k and student features x ∈ R^p are jointly Gaussian,
 * zero mean, with E[xxᵀ] = Ω (p×p), E[x uᵀ] = Φ (p×k), E[uuᵀ] = Ψ (k×k).
 * The teacher field is z₀ = θᵀu/√k (variance ρ = θᵀΨθ/k) and the labels are
 *   - 'ridge':                 y = z₀ + √Δ ε               (regression),
 *   - 'square-classification': y = sign(z₀ + √Δ ε) ∈ {±1}, square loss,
 *   - 'logistic':              y = sign(z₀ + √Δ ε) ∈ {±1}, logistic loss,
 * with ε ~ N(0, 1). From n = αp samples the student minimises
 *   Σ_μ ℓ(y_μ, wᵀx_μ/√p) + (λ/2)‖w‖²,   ℓ = ½(y − ŷ)²  or  log(1 + e^{−yŷ}),
 * i.e. for the square loss ŵ = (XᵀX/p + λI)⁻¹ Xᵀy/√p. The order parameters
 * of the solution are q = ŵᵀΩŵ/p (variance of the student field) and
 * m = ŵᵀΦθ/√(pk) (its covariance with the teacher field).
 *
 * ## Fixed-point equations
 *
 * With Ω = U diag(ω) Uᵀ and v = Φθ/√k (so E[x z₀] = v), let
 * t̃_i = (Uᵀv)_i² — the teacher signal carried by eigendirection i; the
 * variance of z₀ explained by the features is Σ_i t̃_i/ω_i ≤ ρ. Then
 *   V = (1/p) Σ_i ω_i/(λ + V̂ω_i)
 *   q = (1/p) Σ_i q̂ ω_i²/(λ + V̂ω_i)² + m̂ₛ² Σ_i ω_i t̃_i/(λ + V̂ω_i)²
 *   m = m̂ₛ Σ_i t̃_i/(λ + V̂ω_i)
 * and, with f_out = (prox − ω)/V the output function of the loss,
 *   V̂ = −α E[∂_ω f_out],  q̂ = α E[f_out²],  m̂ₛ = α E[∂_{ω_t} Z₀ · f_out / Z₀]
 * (expectations over the Gaussian student field ω = √q ξ, the teacher field
 * given it, and the label). In closed form:
 *   - ridge:  V̂ = α/(1+V), q̂ = α(ρ + Δ + q − 2m)/(1+V)², m̂ₛ = α/(1+V)
 *   - square-classification, c = √(2/(π(ρ+Δ))):
 *             V̂ = α/(1+V), q̂ = α(1 + q − 2cm)/(1+V)², m̂ₛ = αc/(1+V)
 *   - logistic: Gauss–Hermite quadrature over ξ of the proximal operator
 *     (see `logisticHats`).
 *
 * **The √γ convention.** Loureiro et al. (see docs/references.md) write the same
 * equations with t_i = (UᵀΦθθᵀΦᵀU)_ii = k t̃_i, ⟨·⟩ the mean over the p
 * eigenvalues, γ = k/p, m̂ = α/(√γ(1+V)) and m = (m̂/√γ)⟨t/(λ+V̂ω)⟩. Since
 * (1/p)·k t̃_i/√γ = √γ t̃_i, their equations are ours with m̂ₛ = √γ m̂: the two
 * factors of √γ cancel. We iterate with m̂ₛ (no γ anywhere) and report `mhat`
 * in their convention (m̂ = m̂ₛ/√γ). Checked numerically in the tests: against
 * the Marchenko–Pastur ridge risk, against Monte Carlo ridge fits, and
 * against the independent deterministic-equivalent formula of
 * `linear-transfer.ts`.
 *
 * Test error: 'ridge' → ρ + q − 2m = E(ŷ − z₀)² (against the noiseless
 * teacher; add Δ for fresh noisy labels); classification → the probability
 * that sign(ŷ) ≠ sign(z₀), arccos(m/√(ρq))/π. Training loss (mean loss over
 * the n training samples, without the penalty): square loss →
 * E(y − ŷ)² = (ρ + Δ + q − 2m)/(1+V)² for 'ridge' and (1 + q − 2cm)/(1+V)²
 * for 'square-classification'; logistic → E log(1 + e^{−y·prox}).
 *
 * Iteration: from V = 1000, q = m = 0.001, alternate hat and overlap updates
 * with damping x ← η x_old + (1 − η) x_new, until the largest relative change
 * of (V, q, m) is below the tolerance.
 */
import type { MatrixLike } from '../estimators/matrix.js';
import { toDense, toVector } from '../estimators/matrix.js';
import {
  assertPositiveSemidefinite,
  dot,
  matvec,
  NotPositiveSemidefiniteError,
  symmetrize,
} from '../linalg/dense.js';
import { symmetricEigenProjections } from './eigen.js';
import { logisticProximal } from './proximal.js';
import { erfc, gaussHermite, logisticLoss, sigmoid } from './special.js';

export { logisticProximal, ProximalError } from './proximal.js';

const NAME = 'solveGcm';

export type GcmTask = 'ridge' | 'square-classification' | 'logistic';

/** What the fixed point needs from the covariances (computed once, reusable across α and λ). */
export interface GcmSpectrum {
  /** Student dimension. */
  readonly p: number;
  /** Teacher dimension. */
  readonly k: number;
  /** θᵀΨθ/k: variance of the teacher field z₀. */
  readonly rho: number;
  /** Eigenvalues ω_i of Ω (≥ 0), largest first. */
  readonly omegaEigenvalues: Float64Array;
  /** t̃_i = (Uᵀ Φθ/√k)_i²: teacher signal on eigendirection i of Ω. */
  readonly projections: Float64Array;
  /** Σ_{ω_i>0} t̃_i/ω_i: variance of z₀ explained linearly by the student features (≤ ρ). */
  readonly explainedVariance: number;
}

export interface GcmCovariances {
  /** Ω = E[xxᵀ], student features, p×p. */
  omega: MatrixLike;
  /** Φ = E[x uᵀ], student–teacher cross-covariance, p×k. */
  phi: MatrixLike;
  /** Ψ = E[uuᵀ], teacher features, k×k. */
  psi: MatrixLike;
  /** Teacher weights θ (length k); z₀ = θᵀu/√k. */
  theta: ArrayLike<number>;
}

/**
 * Diagonalises Ω once and projects the teacher onto its eigenvectors.
 * Checks (with errors naming the matrix): shapes (Ω p×p, Φ p×k, Ψ k×k, θ of
 * length k); Ω and Ψ symmetric and positive semi-definite; ρ > 0; and
 * consistency of the joint covariance of (x, z₀) — the teacher signal must lie
 * in the range of Ω and the features cannot explain more than ρ.
 */
export function gcmSpectrum(covariances: GcmCovariances): GcmSpectrum {
  const fn = 'gcmSpectrum';
  const omega = toDense(fn, 'omega', covariances.omega);
  const phi = toDense(fn, 'phi', covariances.phi);
  const psi = toDense(fn, 'psi', covariances.psi);
  const theta = toVector(fn, 'theta', covariances.theta);
  const p = omega.rows;
  if (omega.cols !== p)
    throw new Error(`${fn}: omega must be square (p×p), got [${p}, ${omega.cols}]`);
  if (phi.rows !== p)
    throw new Error(
      `${fn}: phi must be p×k with p = ${p} (the size of omega), got [${phi.rows}, ${phi.cols}]`,
    );
  const k = phi.cols;
  if (psi.rows !== k || psi.cols !== k)
    throw new Error(
      `${fn}: psi must be k×k with k = ${k} (the columns of phi), got [${psi.rows}, ${psi.cols}]`,
    );
  if (theta.length !== k)
    throw new Error(
      `${fn}: theta must have length k = ${k} (the columns of phi), got ${theta.length}`,
    );
  assertPositiveSemidefinite(psi, fn, 'psi');
  const rho = dot(theta, matvec(psi, theta)) / k;
  if (!(rho > 0))
    throw new Error(`${fn}: the teacher field has variance θᵀΨθ/k = ${rho}; it must be positive`);
  const v = matvec(phi, theta);
  for (let i = 0; i < p; i++) v[i] = (v[i] as number) / Math.sqrt(k);
  // Only the eigenvalues and the teacher's projections enter the equations:
  // tridiagonalisation + QL (seconds at p = 2000) instead of eigenvectors.
  const sym = symmetrize(omega, fn, 'omega');
  const { values, projections } = symmetricEigenProjections(sym.data, p, v);
  let scale = 0;
  for (const w of values) scale = Math.max(scale, Math.abs(w));
  for (let i = 0; i < p; i++) {
    const w = values[i] as number;
    if (w < 0) {
      if (w < -1e-9 * scale) throw new NotPositiveSemidefiniteError(fn, 'omega', w, scale);
      values[i] = 0;
    }
  }
  return spectrumFromProjections(fn, values, projections, rho, k);
}

function spectrumFromProjections(
  fn: string,
  values: Float64Array,
  projections: Float64Array,
  rho: number,
  k: number,
): GcmSpectrum {
  const p = values.length;
  const top = values[0] as number;
  const cutoff = 1e-12 * Math.max(top, 0);
  let explained = 0;
  let outside = 0;
  let vNorm2 = 0;
  for (let j = 0; j < p; j++) {
    const s2 = projections[j] as number;
    vNorm2 += s2;
    const w = values[j] as number;
    if (w > cutoff) explained += s2 / w;
    else outside += s2;
  }
  if (outside > 1e-8 * Math.max(vNorm2, 1e-300) && outside > 1e-14)
    throw new Error(
      `${fn}: the joint covariance of student features and teacher is not positive semi-definite: ` +
        `Φθ/√k has squared norm ${outside} outside the range of omega (omega is singular along directions the teacher correlates with)`,
    );
  if (explained > rho * (1 + 1e-6))
    throw new Error(
      `${fn}: the joint covariance of student features and teacher is not positive semi-definite: ` +
        `the features would explain variance ${explained} of a teacher field whose variance is only ρ = ${rho} ` +
        '(check that phi is E[x uᵀ] for the given omega and psi)',
    );
  return {
    p,
    k,
    rho,
    omegaEigenvalues: values,
    projections,
    explainedVariance: Math.min(explained, rho),
  };
}

/**
 * A spectrum given directly (for covariances known through their
 * eigen-structure): eigenvalues ω_i of Ω, projections t̃_i = (Uᵀ Φθ/√k)_i²,
 * ρ, and the teacher dimension k (only used to report `mhat` in the
 * Loureiro et al. convention).
 */
export function gcmSpectrumFromEigen(input: {
  omegaEigenvalues: ArrayLike<number>;
  projections: ArrayLike<number>;
  rho: number;
  k: number;
}): GcmSpectrum {
  const fn = 'gcmSpectrumFromEigen';
  const values = toVector(fn, 'omegaEigenvalues', input.omegaEigenvalues);
  const t = toVector(fn, 'projections', input.projections);
  if (t.length !== values.length)
    throw new Error(
      `${fn}: omegaEigenvalues has ${values.length} entries but projections has ${t.length}`,
    );
  if (values.length === 0) throw new Error(`${fn}: empty spectrum`);
  if (!(input.rho > 0)) throw new Error(`${fn}: rho must be positive, got ${input.rho}`);
  if (!Number.isInteger(input.k) || input.k < 1)
    throw new Error(`${fn}: k must be a positive integer, got ${input.k}`);
  const order = Array.from(values.keys()).sort(
    (a, b) => (values[b] as number) - (values[a] as number),
  );
  const p = values.length;
  const sortedValues = new Float64Array(p);
  const sortedProjections = new Float64Array(p);
  order.forEach((src, j) => {
    const w = values[src] as number;
    if (w < 0) throw new Error(`${fn}: omegaEigenvalues[${src}] = ${w} is negative`);
    const tj = t[src] as number;
    if (tj < 0) throw new Error(`${fn}: projections[${src}] = ${tj} is negative`);
    sortedValues[j] = w;
    sortedProjections[j] = tj;
  });
  return spectrumFromProjections(fn, sortedValues, sortedProjections, input.rho, input.k);
}

export interface GcmProblem {
  task: GcmTask;
  /** Sample ratio n/p (> 0). */
  alpha: number;
  /** Ridge penalty λ (> 0), with the loss Σℓ + (λ/2)‖w‖² and fields wᵀx/√p. */
  lambda: number;
  /** Label-noise variance Δ ≥ 0 (added to the teacher field before the sign for classification). Default 0. */
  noiseVariance?: number;
}

export interface GcmOptions {
  /** Weight of the old iterate, η in x ← ηx_old + (1−η)x_new. Default 0.5. */
  damping?: number;
  /** Stop when the largest relative change of (V, q, m) is below this. Default 1e-9. */
  tolerance?: number;
  /** Default 10000. */
  maxIterations?: number;
  /** Starting point; default V = 1000, q = m = 0.001. */
  init?: { V: number; q: number; m: number };
  /** Gauss–Hermite nodes for the logistic integrals. Default 96. */
  quadratureNodes?: number;
  /** Throw {@link GcmConvergenceError} when not converged (default true); otherwise return `converged: false`. */
  throwOnNonConvergence?: boolean;
}

export interface GcmResult {
  task: GcmTask;
  alpha: number;
  lambda: number;
  noiseVariance: number;
  rho: number;
  V: number;
  q: number;
  m: number;
  Vhat: number;
  qhat: number;
  /** m̂ in the Loureiro et al. convention (m̂ = m̂ₛ/√γ, γ = k/p). */
  mhat: number;
  /** MSE against the noiseless teacher field (ridge) or classification error against sign(z₀). */
  testError: number;
  /** Mean training loss without the penalty (see the module comment). */
  trainLoss: number;
  iterations: number;
  converged: boolean;
  /** Largest relative change of (V, q, m) in the last iteration. */
  residual: number;
}

/** The fixed-point iteration did not converge (or diverged). */
export class GcmConvergenceError extends Error {
  constructor(
    message: string,
    readonly residual: number,
    readonly iterations: number,
    readonly state: { V: number; q: number; m: number },
  ) {
    super(message);
    this.name = 'GcmConvergenceError';
  }
}

interface Hats {
  Vhat: number;
  qhat: number;
  /** m̂ₛ = √γ m̂ (no γ). */
  mhatS: number;
}

/**
 * Hat variables for a ±1 teacher y = sign(z₀ + √Δ ε) by Gauss–Hermite
 * quadrature over the student field ω = √q ξ. Given ξ, the teacher field is
 * Gaussian with mean ω_t = (m/√q)ξ and variance V_t = ρ − m²/q, so
 * P(y | ξ) = Z₀ = ½ erfc(−y ω_t/√(2(V_t+Δ))) and
 * ∂_{ω_t}Z₀ = y e^{−ω_t²/(2(V_t+Δ))}/√(2π(V_t+Δ)). For each label the proximal
 * point x = prox_y(ω, V) gives f_out = (x − ω)/V and ∂_ω f_out =
 * −ℓ''/(1 + Vℓ''), ℓ'' = σ(yx)σ(−yx); then
 *   V̂ = α Σ_ξ Σ_y Z₀ ℓ''/(1 + Vℓ''),  q̂ = α Σ Z₀ f_out²,  m̂ₛ = α Σ ∂Z₀ f_out,
 * and the training loss is Σ Z₀ log(1 + e^{−yx}).
 * `loss: 'square'` replaces the logistic loss by ½(y − x)² (used to check
 * this machinery against the closed-form square-classification hats).
 */
export function pmOneTeacherHats(
  state: { V: number; q: number; m: number },
  rho: number,
  alpha: number,
  noiseVariance: number,
  nodes: number,
  loss: 'logistic' | 'square' = 'logistic',
): Hats & { trainLoss: number } {
  const { V, q, m } = state;
  const rule = gaussHermite(nodes);
  const sq = Math.sqrt(Math.max(q, 1e-300));
  const vStar = Math.max(rho - (m * m) / Math.max(q, 1e-300), 1e-14 * rho);
  const s = vStar + noiseVariance;
  const sqrt2s = Math.sqrt(2 * s);
  const dNorm = 1 / Math.sqrt(2 * Math.PI * s);
  let iV = 0;
  let iQ = 0;
  let iM = 0;
  let iT = 0;
  for (let j = 0; j < rule.nodes.length; j++) {
    const xi = rule.nodes[j] as number;
    const w = rule.weights[j] as number;
    const omega = sq * xi;
    const omegaStar = (m / sq) * xi;
    const gauss = dNorm * Math.exp(-(omegaStar * omegaStar) / (2 * s));
    for (const y of [1, -1]) {
      const z0 = 0.5 * erfc((-y * omegaStar) / sqrt2s);
      const dz0 = y * gauss;
      let x: number;
      let l2: number;
      let lossValue: number;
      if (loss === 'logistic') {
        x = logisticProximal(y, omega, V);
        const sg = sigmoid(y * x);
        l2 = sg * (1 - sg);
        lossValue = logisticLoss(y * x);
      } else {
        x = (omega + V * y) / (1 + V);
        l2 = 1;
        lossValue = (y - x) * (y - x);
      }
      const f = (x - omega) / V;
      iV += w * z0 * (l2 / (1 + V * l2));
      iQ += w * z0 * f * f;
      iM += w * dz0 * f;
      iT += w * z0 * lossValue;
    }
  }
  return { Vhat: alpha * iV, qhat: alpha * iQ, mhatS: alpha * iM, trainLoss: iT };
}

function closedFormHats(
  task: 'ridge' | 'square-classification',
  state: { V: number; q: number; m: number },
  rho: number,
  alpha: number,
  noise: number,
): Hats {
  const { V, q, m } = state;
  const a = alpha / (1 + V);
  if (task === 'ridge')
    return { Vhat: a, qhat: (a * (rho + noise + q - 2 * m)) / (1 + V), mhatS: a };
  const c = Math.sqrt(2 / (Math.PI * (rho + noise)));
  return { Vhat: a, qhat: (a * (1 + q - 2 * c * m)) / (1 + V), mhatS: a * c };
}

function overlaps(
  spectrum: GcmSpectrum,
  lambda: number,
  hats: Hats,
): { V: number; q: number; m: number } {
  const { omegaEigenvalues: w, projections: t, p } = spectrum;
  let V = 0;
  let qNoise = 0;
  let qSignal = 0;
  let m = 0;
  for (let i = 0; i < p; i++) {
    const wi = w[i] as number;
    const ti = t[i] as number;
    const den = lambda + hats.Vhat * wi;
    V += wi / den;
    qNoise += (wi * wi) / (den * den);
    qSignal += (wi * ti) / (den * den);
    m += ti / den;
  }
  return {
    V: V / p,
    q: (hats.qhat * qNoise) / p + hats.mhatS * hats.mhatS * qSignal,
    m: hats.mhatS * m,
  };
}

function classificationError(m: number, q: number, rho: number): number {
  if (!(q > 0)) return 0.5;
  const c = Math.max(-1, Math.min(1, m / Math.sqrt(rho * q)));
  return Math.acos(c) / Math.PI;
}

function validateProblem(problem: GcmProblem): number {
  const { task, alpha, lambda } = problem;
  if (task !== 'ridge' && task !== 'square-classification' && task !== 'logistic')
    throw new Error(
      `${NAME}: unknown task '${String(task)}' (expected 'ridge', 'square-classification' or 'logistic')`,
    );
  if (!(alpha > 0) || !Number.isFinite(alpha))
    throw new Error(`${NAME}: alpha = n/p must be a positive number, got ${alpha}`);
  if (!(lambda > 0) || !Number.isFinite(lambda))
    throw new Error(
      `${NAME}: lambda must be positive (use a small value such as 1e-4 for the ridgeless limit), got ${lambda}`,
    );
  const noise = problem.noiseVariance ?? 0;
  if (!(noise >= 0) || !Number.isFinite(noise))
    throw new Error(`${NAME}: noiseVariance must be ≥ 0, got ${noise}`);
  return noise;
}

/**
 * Solves the GCM fixed point for one (task, α, λ, Δ). See the module comment
 * for the equations and conventions. Throws {@link GcmConvergenceError}
 * (with the residual) when the iteration does not converge, unless
 * `throwOnNonConvergence: false`.
 */
export function solveGcm(
  spectrum: GcmSpectrum,
  problem: GcmProblem,
  options: GcmOptions = {},
): GcmResult {
  const noise = validateProblem(problem);
  const { task, alpha, lambda } = problem;
  const damping = options.damping ?? 0.5;
  if (!(damping >= 0 && damping < 1))
    throw new Error(`${NAME}: damping must be in [0, 1), got ${damping}`);
  const tolerance = options.tolerance ?? 1e-9;
  const maxIterations = options.maxIterations ?? 10000;
  const nodes = options.quadratureNodes ?? 96;
  const rho = spectrum.rho;
  let state = { ...(options.init ?? { V: 1000, q: 0.001, m: 0.001 }) };
  if (!(state.V > 0 && state.q > 0))
    throw new Error(`${NAME}: init needs V > 0 and q > 0, got V = ${state.V}, q = ${state.q}`);

  const hatsOf = (s: { V: number; q: number; m: number }): Hats & { trainLoss: number } => {
    if (task === 'logistic') return pmOneTeacherHats(s, rho, alpha, noise, nodes, 'logistic');
    const h = closedFormHats(task, s, rho, alpha, noise);
    const trainLoss =
      task === 'ridge'
        ? (rho + noise + s.q - 2 * s.m) / ((1 + s.V) * (1 + s.V))
        : (1 + s.q - 2 * Math.sqrt(2 / (Math.PI * (rho + noise))) * s.m) / ((1 + s.V) * (1 + s.V));
    return { ...h, trainLoss };
  };

  let residual = Number.POSITIVE_INFINITY;
  let iterations = 0;
  let hats = hatsOf(state);
  for (; iterations < maxIterations; ) {
    iterations++;
    const next = overlaps(spectrum, lambda, hats);
    const damped = {
      V: damping * state.V + (1 - damping) * next.V,
      q: damping * state.q + (1 - damping) * next.q,
      m: damping * state.m + (1 - damping) * next.m,
    };
    if (!Number.isFinite(damped.V) || !Number.isFinite(damped.q) || !Number.isFinite(damped.m))
      throw new GcmConvergenceError(
        `${NAME}: the fixed-point iteration diverged at iteration ${iterations} (V = ${damped.V}, q = ${damped.q}, m = ${damped.m})`,
        Number.POSITIVE_INFINITY,
        iterations,
        state,
      );
    const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(a), 1e-12);
    residual = Math.max(rel(damped.V, state.V), rel(damped.q, state.q), rel(damped.m, state.m));
    state = damped;
    hats = hatsOf(state);
    if (residual < tolerance) break;
  }
  const converged = residual < tolerance;
  if (!converged && (options.throwOnNonConvergence ?? true))
    throw new GcmConvergenceError(
      `${NAME}: no convergence after ${iterations} iterations (task ${task}, α = ${alpha}, λ = ${lambda}): ` +
        `residual ${residual.toExponential(3)} > tolerance ${tolerance} — try more iterations or more damping`,
      residual,
      iterations,
      state,
    );
  const gamma = spectrum.k / spectrum.p;
  const testError =
    task === 'ridge' ? rho + state.q - 2 * state.m : classificationError(state.m, state.q, rho);
  return {
    task,
    alpha,
    lambda,
    noiseVariance: noise,
    rho,
    V: state.V,
    q: state.q,
    m: state.m,
    Vhat: hats.Vhat,
    qhat: hats.qhat,
    mhat: hats.mhatS / Math.sqrt(gamma),
    testError,
    trainLoss: hats.trainLoss,
    iterations,
    converged,
    residual,
  };
}

/**
 * Learning curve over several α (same task, λ, Δ), each solve warm-started
 * from the previous fixed point.
 */
export function gcmLearningCurve(
  spectrum: GcmSpectrum,
  alphas: readonly number[],
  problem: Omit<GcmProblem, 'alpha'>,
  options: GcmOptions = {},
): GcmResult[] {
  const out: GcmResult[] = [];
  let init = options.init;
  for (const alpha of alphas) {
    const r = solveGcm(spectrum, { ...problem, alpha }, init ? { ...options, init } : options);
    out.push(r);
    init = { V: r.V, q: r.q, m: r.m };
  }
  return out;
}

/** Convenience: {@link gcmSpectrum} then {@link solveGcm}. */
export function solveGcmFromCovariances(
  covariances: GcmCovariances,
  problem: GcmProblem,
  options: GcmOptions = {},
): GcmResult {
  return solveGcm(gcmSpectrum(covariances), problem, options);
}
