import { checkSameLength, type MatrixLike, targetClasses, toDense, toLabels } from './matrix.js';
import { leftSpectrum } from './spectrum.js';

export interface HScoreOptions {
  /** Number of target classes; default: largest label + 1. Every class needs a sample. */
  numClasses?: number;
  /**
   * Eigenvalues of cov(f) at or below `rcond × λ_max` are treated as zero by
   * the pseudo-inverse; default 1e-10.
   */
  rcond?: number;
}

/**
 * H-score (Bao, Li, Huang, Zheng, Ma, Wang, Guo 2019, "An Information-Theoretic
 * Approach to Transferability in Task Transfer Learning", ICIP).
 *
 * Inputs: features f(x_i) ∈ R^d [n, d] and target labels y_i.
 *
 *   H(f) = tr( cov(f)⁺ · cov(E[f | Y]) )
 *
 * with cov(f) = (1/n) Σ_i (f_i − μ)(f_i − μ)ᵀ and
 * cov(E[f | Y]) = Σ_y P̂(y) (μ_y − μ)(μ_y − μ)ᵀ (μ_y: class means), i.e. each
 * feature replaced by its class mean. Using 1/n or 1/(n−1) for both gives the
 * same value (the factor cancels). Higher means more transferable;
 * 0 ≤ H ≤ min(rank cov(f), C − 1).
 *
 * Singular covariance: `cov(f)⁺` is the Moore–Penrose pseudo-inverse,
 * dropping eigenvalues ≤ rcond·λ_max. Because the class-mean deviations lie
 * in the span of the feature deviations, this keeps H invariant under every
 * invertible linear map f → Af, singular or not (a ridge cov(f) + εI would
 * not), and duplicated or linearly dependent feature columns do not change H.
 * With few samples and wide features (d ≥ n − 1) the centred features span
 * everything and H saturates at C − 1, as any exact version does; shrinkage
 * variants (Ibrahim, Ponomareva, Mazumder 2022) are a different estimator.
 *
 * Computation: with the centred features X = U S Vᵀ (thin SVD, non-zero part),
 * cov(f)⁺ = n V S⁻² Vᵀ and μ_y − μ = Xᵀe_y / n_y (e_y: indicator of class y),
 * so the trace reduces to
 *
 *   H = Σ_y ‖Uᵀ e_y‖² / n_y,
 *
 * needing only U, from the eigendecomposition (Jacobi) of the smaller of XᵀX
 * and XXᵀ.
 */
export function hScore(
  features: MatrixLike,
  labels: ArrayLike<number>,
  options: HScoreOptions = {},
): number {
  const fn = 'hScore';
  const f = toDense(fn, 'features', features);
  const y = toLabels(fn, 'labels', labels);
  checkSameLength(fn, 'features', f.rows, 'labels', y.length);
  const { numClasses: c, counts } = targetClasses(fn, y, options.numClasses);
  const n = f.rows;
  const d = f.cols;
  const x = f.data;
  const rcond = options.rcond ?? 1e-10;

  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (x[i * d + j] as number);
  for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) / n;
  const centred = new Float64Array(n * d);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) centred[i * d + j] = (x[i * d + j] as number) - (mean[j] as number);

  const { r, u } = leftSpectrum({ data: centred, rows: n, cols: d }, rcond);
  if (r === 0) throw new Error(`${fn}: features are constant (zero covariance)`);
  // Σ_{i in class y} U[i, k] for every class y and direction k.
  const sums = new Float64Array(c * r);
  for (let i = 0; i < n; i++) {
    const off = (y[i] as number) * r;
    for (let k = 0; k < r; k++)
      sums[off + k] = (sums[off + k] as number) + (u[i * r + k] as number);
  }
  let h = 0;
  for (let cl = 0; cl < c; cl++) {
    let sq = 0;
    for (let k = 0; k < r; k++) sq += (sums[cl * r + k] as number) ** 2;
    h += sq / (counts[cl] as number);
  }
  return h;
}
