import {
  checkSameLength,
  type Dense,
  type MatrixLike,
  targetClasses,
  toDense,
  toLabels,
  toVector,
} from './matrix.js';
import { leftSpectrum, type Spectrum } from './spectrum.js';

export interface LogMEOptions {
  /** Number of target classes (classification); default: largest label + 1. */
  numClasses?: number;
  /** Fixed-point iterations per target column; default 1000. */
  maxIter?: number;
  /** Stop when α/β changes by at most `tol` (relative); default 1e-10. */
  tol?: number;
}

/** The maximised evidence of one target column. */
export interface LogMEColumn {
  /** max_{α,β} log p(y | F, α, β) / n. */
  evidence: number;
  alpha: number;
  beta: number;
  iterations: number;
  /**
   * Whether α/β settled to `tol`. It stays false when the supremum is at the
   * boundary (α → ∞: the features explain nothing of this column, or β → ∞:
   * they explain it exactly, possible when d ≥ n): α or β keeps growing while
   * the evidence levels off (changes below 1e-10 per sample in our tests).
   */
  converged: boolean;
}

export interface LogMEResult {
  /** Mean over target columns of the per-sample log maximum evidence (the LogME score). */
  score: number;
  columns: LogMEColumn[];
}

/**
 * LogME, the Logarithm of Maximum Evidence (You, Liu, Wang, Long 2021,
 * "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
 * ICML, arXiv 2102.11005).
 *
 * Model for one target column y ∈ R^n given features F [n, d]: w ~ N(0, α⁻¹I_d),
 * y | F, w ~ N(Fw, β⁻¹I_n). Its evidence, with A = αI + βFᵀF and
 * m = βA⁻¹Fᵀy, is
 *
 *   log p(y | F, α, β) = n/2 log β + d/2 log α − n/2 log 2π
 *                        − β/2 ‖Fm − y‖² − α/2 ‖m‖² − 1/2 log|A|,
 *
 * equal to log N(y; 0, β⁻¹I + α⁻¹FFᵀ). With FᵀF = V diag(σ) Vᵀ (only the r
 * eigenvalues σ_i > 0 matter: zero ones cancel between d/2 log α and log|A|),
 * u_i = Fv_i/√σ_i, x_i = u_iᵀy, t = α/β:
 *
 *   ‖m‖²      = Σ σ_i x_i² / (t + σ_i)²
 *   ‖Fm − y‖² = Σ x_i² t² / (t + σ_i)² + ‖y − U Uᵀy‖²
 *   log|A|    = (d − r) log α + Σ log(α + βσ_i)
 *
 * and α, β are maximised by the paper's fixed-point iteration (MacKay's
 * updates), from α = β = 1:
 *
 *   γ = Σ βσ_i / (α + βσ_i),   α ← γ / ‖m‖²,   β ← (n − γ) / ‖Fm − y‖²
 *
 * until t = α/β changes by ≤ `tol` (relative). A fixed point is a stationary
 * point of the evidence (∂/∂α = ∂/∂β = 0). LogME for classification takes
 * the one-hot columns of the labels and averages the per-sample evidence
 * (log p / n) over the C classes.
 *
 * Implementation notes and deviations from the authors' code (thuml/LogME):
 * - the eigendecomposition is of the smaller Gram matrix (FᵀF if d ≤ n, else
 *   FFᵀ), by Jacobi; eigenvalues ≤ max(n, d)·2.2e-16·σ_max count as zero;
 * - ‖y − UUᵀy‖² is computed directly (no cancellation when y is almost in the
 *   span of F);
 * - iterations run to `tol` = 1e-10 (up to `maxIter` = 1000) rather than
 *   the reference code's 1e-3 within at most 11 iterations, and the evidence
 *   is evaluated at the final α, β (so it is the maximum, not a nearby value);
 * - to keep α, β finite when y is orthogonal to (or exactly in) the span of F
 *   — the evidence then peaks at α = ∞ (or β = ∞) — ‖m‖² and ‖Fm − y‖² are
 *   floored at 1e-14·‖y‖²/σ_max and 1e-14·‖y‖² respectively (the reference
 *   code adds 1e-5 to both instead).
 * No feature centring or scaling is applied (as in the paper).
 */
export function logME(
  features: MatrixLike,
  labels: ArrayLike<number>,
  options: LogMEOptions = {},
): number {
  return logMEDetails(features, labels, options).score;
}

/** {@link logME} with the per-class α, β, evidence and iteration counts. */
export function logMEDetails(
  features: MatrixLike,
  labels: ArrayLike<number>,
  options: LogMEOptions = {},
): LogMEResult {
  const fn = 'logME';
  const f = toDense(fn, 'features', features);
  const y = toLabels(fn, 'labels', labels);
  checkSameLength(fn, 'features', f.rows, 'labels', y.length);
  const { numClasses: c } = targetClasses(fn, y, options.numClasses);
  const spectrum = gramSpectrum(fn, f);
  const columns: LogMEColumn[] = [];
  const col = new Float64Array(f.rows);
  for (let k = 0; k < c; k++) {
    for (let i = 0; i < f.rows; i++) col[i] = y[i] === k ? 1 : 0;
    columns.push(maximiseEvidence(spectrum, col, options));
  }
  return { score: columns.reduce((s, r) => s + r.evidence, 0) / c, columns };
}

/**
 * LogME for real-valued targets (the paper's regression case): `targets` is
 * [n, k]; the score is the mean over the k columns of the per-sample log
 * maximum evidence.
 */
export function logMERegression(
  features: MatrixLike,
  targets: MatrixLike,
  options: Omit<LogMEOptions, 'numClasses'> = {},
): LogMEResult {
  const fn = 'logMERegression';
  const f = toDense(fn, 'features', features);
  const t = toDense(fn, 'targets', targets);
  checkSameLength(fn, 'features', f.rows, 'targets', t.rows, 'rows', 'rows');
  const spectrum = gramSpectrum(fn, f);
  const columns: LogMEColumn[] = [];
  const col = new Float64Array(f.rows);
  for (let k = 0; k < t.cols; k++) {
    for (let i = 0; i < f.rows; i++) col[i] = t.data[i * t.cols + k] as number;
    let yy = 0;
    for (const v of col) yy += v * v;
    if (yy === 0) throw new Error(`${fn}: target column ${k} is all zero`);
    columns.push(maximiseEvidence(spectrum, col, options));
  }
  return { score: columns.reduce((s, r) => s + r.evidence, 0) / t.cols, columns };
}

/**
 * The evidence log p(y | F, α, β) (total, not divided by n) for fixed α, β > 0,
 * by the eigen-formula above. Exposed for tests and for users who want the
 * evidence surface.
 */
export function logMEEvidence(
  features: MatrixLike,
  y: ArrayLike<number>,
  alpha: number,
  beta: number,
): number {
  const fn = 'logMEEvidence';
  const f = toDense(fn, 'features', features);
  const col = toVector(fn, 'y', y);
  checkSameLength(fn, 'features', f.rows, 'y', col.length);
  if (!(alpha > 0 && beta > 0 && Number.isFinite(alpha) && Number.isFinite(beta)))
    throw new Error(`${fn}: alpha and beta must be finite and > 0, got ${alpha}, ${beta}`);
  const s = gramSpectrum(fn, f);
  const { x, residual } = project(s, col);
  return evidenceAt(s, x, residual, alpha, beta);
}

/** Spectrum with LogME's rank cutoff: σ ≤ max(n, d)·ε_machine·σ_max counts as zero. */
function gramSpectrum(fn: string, f: Dense): Spectrum {
  const s = leftSpectrum(f, Math.max(f.rows, f.cols) * 2.220446049250313e-16);
  if (s.r === 0) throw new Error(`${fn}: features are all zero (rank 0)`);
  return s;
}

/** x = Uᵀy and ‖y − U x‖². */
function project(s: Spectrum, y: Float64Array): { x: Float64Array; residual: number } {
  const { n, r, u } = s;
  const x = new Float64Array(r);
  for (let i = 0; i < n; i++) {
    const yi = y[i] as number;
    if (yi === 0) continue;
    for (let k = 0; k < r; k++) x[k] = (x[k] as number) + (u[i * r + k] as number) * yi;
  }
  let residual = 0;
  for (let i = 0; i < n; i++) {
    let p = 0;
    for (let k = 0; k < r; k++) p += (u[i * r + k] as number) * (x[k] as number);
    residual += ((y[i] as number) - p) ** 2;
  }
  return { x, residual };
}

/** ‖m‖² and ‖Fm − y‖² at t = α/β. */
function normsAt(s: Spectrum, x: Float64Array, residual: number, t: number): [number, number] {
  let m2 = 0;
  let e2 = residual;
  for (let k = 0; k < s.r; k++) {
    const sig = s.sigma[k] as number;
    const x2 = (x[k] as number) ** 2;
    const den = (t + sig) ** 2;
    m2 += (sig * x2) / den;
    e2 += (x2 * t * t) / den;
  }
  return [m2, e2];
}

function evidenceAt(
  s: Spectrum,
  x: Float64Array,
  residual: number,
  alpha: number,
  beta: number,
): number {
  const [m2, e2] = normsAt(s, x, residual, alpha / beta);
  let logDet = 0; // Σ over positive σ of log(α + βσ); the d − r zero ones cancel with d/2 log α
  for (let k = 0; k < s.r; k++) logDet += Math.log(alpha + beta * (s.sigma[k] as number));
  return (
    (s.n / 2) * Math.log(beta) +
    (s.r / 2) * Math.log(alpha) -
    (s.n / 2) * Math.log(2 * Math.PI) -
    (beta / 2) * e2 -
    (alpha / 2) * m2 -
    logDet / 2
  );
}

function maximiseEvidence(s: Spectrum, y: Float64Array, options: LogMEOptions): LogMEColumn {
  const maxIter = options.maxIter ?? 1000;
  const tol = options.tol ?? 1e-10;
  if (!Number.isInteger(maxIter) || maxIter < 1)
    throw new Error(`logME: maxIter must be a positive integer, got ${maxIter}`);
  const { x, residual } = project(s, y);
  let yy = 0;
  for (const v of y) yy += v * v;
  const m2Floor = (1e-14 * yy) / (s.sigma[0] as number);
  const e2Floor = 1e-14 * yy;
  let alpha = 1;
  let beta = 1;
  let iterations = 0;
  let converged = false;
  while (iterations < maxIter) {
    const t = alpha / beta;
    let gamma = 0;
    for (let k = 0; k < s.r; k++) {
      const sig = s.sigma[k] as number;
      gamma += sig / (sig + t);
    }
    const [m2, e2] = normsAt(s, x, residual, t);
    alpha = gamma / Math.max(m2, m2Floor);
    beta = (s.n - gamma) / Math.max(e2, e2Floor);
    iterations++;
    if (Math.abs(alpha / beta - t) <= tol * t) {
      converged = true;
      break;
    }
  }
  return {
    evidence: evidenceAt(s, x, residual, alpha, beta) / s.n,
    alpha,
    beta,
    iterations,
    converged,
  };
}
