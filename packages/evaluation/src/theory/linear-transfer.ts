/**
 * Linear feature transfer (after Li, Sen & Adlam 2024, arXiv 2404.12481):
 * the asymptotic downstream risk of ridge / minimum-norm regression on a
 * pretrained linear representation, averaged over a task ensemble, with a
 * fine-grained bias–variance split; optimal spectral representations and the
 * hard → soft selection transition; the divergences of the min-norm risk.
 *
 * ## Model
 *
 * x ~ N(0, Σ) in R^d; a task is β with E[ββᵀ] = B (the task ensemble);
 * y = xᵀβ + ε, ε ~ N(0, σ²). The pretrained representation is a d×k matrix
 * B̂, the downstream features are z = B̂ᵀx ∈ R^k, and from n samples
 *   θ̂ = argmin_θ (1/n) Σ_μ (y_μ − z_μᵀθ)² + λ‖θ‖²   (λ > 0),
 * or the minimum-norm least-squares solution (λ → 0⁺). The risk is the excess
 * test error against the noiseless target, R = E(zᵀθ̂ − xᵀβ)², averaged over
 * the data, the noise and the task ensemble.
 *
 * ## Derivation (documented because the paper's own formulas could not be read
 * here; every step is checked against Monte Carlo and the GCM solver in the
 * tests)
 *
 * 1. Reduction to a well-specified problem in z. For a fixed β, (z, xᵀβ) is
 *    jointly Gaussian, so xᵀβ = zᵀw* + r with w* = Ω⁺B̂ᵀΣβ (Ω = B̂ᵀΣB̂) and a
 *    residual r that is Gaussian, independent of z, with variance
 *    σ⊥²(β) = βᵀΣβ − βᵀΣB̂Ω⁺B̂ᵀΣβ (the part of the task the features cannot
 *    express). Hence y = zᵀw* + e with e = r + ε independent Gaussian noise of
 *    variance σ² + σ⊥², and R = E(zᵀ(θ̂ − w*))² + σ⊥² (the cross term vanishes
 *    because r is uncorrelated with z).
 * 2. Deterministic equivalent of ridge in z (Gaussian design, covariance Ω with
 *    eigenvalues a_i): κ solves κ − λ = (κ/n) Σ_i a_i/(a_i + κ) (for λ → 0⁺:
 *    Σ_i a_i/(a_i + κ) = n if n < rank Ω, else κ = 0). With
 *    df₂ = Σ_i a_i²/(a_i + κ)²,
 *      E(zᵀ(θ̂ − w*))² ≈ [κ² w*ᵀΩ(Ω + κ)⁻²w* + (σ² + σ⊥²) df₂/n] / (1 − df₂/n).
 * 3. Ensemble average: everything is quadratic in β, so replace ββᵀ by B.
 *    In the eigenbasis (v_i) of Ω, the signal carried by direction i is
 *    g_i = (v_iᵀB̂ᵀΣ B ΣB̂v_i)/a_i (so a_i E[(v_iᵀw*)²] = g_i), the captured
 *    signal is Σ_i g_i and σ⊥² = tr(ΣB) − Σ_i g_i.
 *
 * Result (the fine-grained split reported by {@link linearTransferRisk}):
 *   bias                      = κ² Σ_i g_i/(a_i + κ)² / (1 − df₂/n)
 *   variance (label noise)    = σ²  (df₂/n)/(1 − df₂/n)
 *   variance (misspecification) = σ⊥² (df₂/n)/(1 − df₂/n)
 *   approximation error       = σ⊥²
 * The misspecified part of the task acts exactly like extra label noise in
 * the variance, which is why even a noiseless task has a variance term.
 *
 * Spectral representations. If B̂ = U diag(w) with U the eigenvectors of Σ
 * (eigenvalues s_i) and b_i = u_iᵀBu_i, then a_i = w_i² s_i and g_i = s_i b_i
 * for w_i ≠ 0; directions with w_i = 0 move their s_i b_i into σ⊥². The two
 * cases join continuously: the risk is
 *   R = [κ² Σ_i s_i b_i/(a_i + κ)² + σ² df₂/n] / (1 − df₂/n)
 * summed over all d directions (a direction with a_i = 0 contributes s_i b_i).
 *
 * Min-norm divergences ("double divergence"). The min-norm risk is finite
 * except where 1 − df₂/n → 0, which for a fixed feature spectrum happens only
 * at n = rank Ω (the interpolation threshold), given any noise or
 * misspecification. A feature spectrum with two scales — k directions of
 * eigenvalue ~1 and d − k of eigenvalue r ≪ 1 — additionally diverges at n = k
 * as r → 0⁺. Ground-truth featurisations produce exactly this when the task
 * prior has k strong and d − k weak directions (b = 1 and ε): B̂ = B gives
 * r = ε², B̂ = B^{1/2} gives r = ε. Mechanism: once the k strong directions
 * are fitted, the weak ones add only an implicit ridge κ ≈ √((d − k) r / k) at
 * n = k, yet min-norm still uses them to interpolate the noise; for k < n < d
 * the variance factor tends to 1/(1 − df₂/n) → (d − k)n/((n − k)(d − n)), so
 * the risk blows up at both n = k (peak height ∝ r^{−1/2}, i.e. ∝ 1/ε for
 * B̂ = B) and n = d (a true divergence for any r > 0). The exact support
 * featurisation (r = 0) diverges only at n = k, and between k and d it beats
 * the ground truth. The paper (v1 abstract) reports that the ground-truth
 * featurisation can make the risk diverge twice; its body could not be read
 * here, so this mechanism is our derivation, checked by Monte Carlo in the
 * tests. See {@link minNormDivergences}.
 *
 * Optimal spectral representations. Stationarity of R in the feature
 * eigenvalues a_i (with κ moving, ∂κ/∂a_j = κ²/(n(a_j + κ)²(1 − df₂/n)))
 * gives, wherever κ > 0,
 *   a_j = A · (s_j b_j − τ)₊
 * for two scalars A > 0, τ: the optimal feature spectrum is an affine
 * (soft-thresholded) function of the per-direction signal s_j b_j. For the
 * min-norm estimator the risk is invariant to the scale A, and there is a
 * second family with κ = 0: select the m < n directions with the largest s_j b_j
 * (any positive weights give the same least-squares fit, so this is hard
 * selection — principal-component regression when b is flat), with risk
 * [Σ_{unselected} s_j b_j + σ² m/n]/(1 − m/n). The optimum is the better of the
 * two families ({@link optimalSpectralRepresentation}); which one wins is the
 * hard/soft selection transition ({@link selectionTransition}). In our
 * numerics the soft family wins at small n (all directions kept, graded
 * weights that let min-norm act like a tuned ridge) and hard selection wins as
 * n grows towards d; more label noise moves the switch to smaller n. With λ > 0 and a
 * free scale the optimum is the Bayes reweighting a ∝ s·b (τ = 0,
 * A = λn/σ²), which is always soft.
 */
import type { MatrixLike } from '../estimators/matrix.js';
import { toDense, toVector } from '../estimators/matrix.js';
import {
  assertPositiveSemidefinite,
  type Dense,
  matmul,
  matmulTransposeA,
  psdEigen,
  zeros,
} from '../linalg/dense.js';

const NAME = 'linearTransferRisk';

export interface LinearTransferRisk {
  /** Total excess risk E(zᵀθ̂ − xᵀβ)² (Infinity at a min-norm interpolation threshold). */
  risk: number;
  /** κ² Σ g/(a+κ)² / (1 − df₂/n): shrinkage bias of the captured signal. */
  bias: number;
  /** varianceNoise + varianceMisspecification. */
  variance: number;
  /** σ² (df₂/n)/(1 − df₂/n). */
  varianceNoise: number;
  /** σ⊥² (df₂/n)/(1 − df₂/n): the uncaptured signal acting as noise. */
  varianceMisspecification: number;
  /** σ⊥² = tr(ΣB) − captured signal: what no θ can fit. */
  approximationError: number;
  /** Effective regularisation κ (0 for min-norm with n > rank). */
  kappa: number;
  df1: number;
  df2: number;
  /** Rank of Ω = B̂ᵀΣB̂. */
  rank: number;
  /** tr(ΣB): total signal variance E(xᵀβ)². */
  totalSignal: number;
  /** Σ g_i: signal variance the features can express. */
  capturedSignal: number;
  regime: 'ridge' | 'overparameterized' | 'underparameterized' | 'interpolation-threshold';
}

export interface DownstreamProblem {
  /** Number of downstream samples (> 0). */
  n: number;
  /** Ridge λ ≥ 0 in (1/n)Σ(y − zᵀθ)² + λ‖θ‖²; 0 means the minimum-norm (ridgeless) limit. */
  lambda: number;
  /** Label-noise variance σ² ≥ 0. */
  noiseVariance: number;
}

function validateProblem(fn: string, problem: DownstreamProblem): void {
  const { n, lambda, noiseVariance } = problem;
  if (!(n > 0) || !Number.isFinite(n)) throw new Error(`${fn}: n must be positive, got ${n}`);
  if (!(lambda >= 0) || !Number.isFinite(lambda))
    throw new Error(`${fn}: lambda must be ≥ 0 (0 = min-norm), got ${lambda}`);
  if (!(noiseVariance >= 0) || !Number.isFinite(noiseVariance))
    throw new Error(`${fn}: noiseVariance must be ≥ 0, got ${noiseVariance}`);
}

interface KappaStats {
  kappa: number;
  df1: number;
  df2: number;
}

function dfs(a: Float64Array, kappa: number): { df1: number; df2: number; s3: number } {
  let df1 = 0;
  let df2 = 0;
  let s3 = 0;
  for (const ai of a) {
    if (ai <= 0) continue;
    const r = ai / (ai + kappa);
    df1 += r;
    df2 += r * r;
    s3 += (r * kappa) / (ai + kappa); // a κ/(a+κ)²
  }
  return { df1, df2, s3 };
}

/**
 * κ for the spectrum a (entries ≤ 0 are absent directions). Safeguarded
 * Newton with a maintained bracket.
 */
function solveKappa(a: Float64Array, n: number, lambda: number, rank: number): KappaStats {
  let total = 0;
  for (const ai of a) if (ai > 0) total += ai;
  if (rank === 0) return { kappa: lambda, df1: 0, df2: 0 };
  if (lambda === 0) {
    if (n >= rank) return { kappa: 0, df1: rank, df2: rank };
    // Σ a/(a+κ) = n, decreasing in κ; work in t = log κ.
    let hi = Math.log(total / n); // Σ a/(a+κ) ≤ S/κ = n here
    let lo = hi - 1;
    while (dfs(a, Math.exp(lo)).df1 <= n) {
      lo -= 2 * (hi - lo);
      if (lo < -690) break;
    }
    let t = 0.5 * (lo + hi);
    for (let it = 0; it < 200; it++) {
      const kappa = Math.exp(t);
      const { df1, s3 } = dfs(a, kappa);
      const h = df1 - n;
      if (h > 0) lo = t;
      else hi = t;
      // dh/dt = −κ Σ a/(a+κ)² = −s3
      let next = s3 > 0 ? t + h / s3 : 0.5 * (lo + hi);
      if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
      if (Math.abs(next - t) < 1e-15 * Math.max(1, Math.abs(t)) || hi - lo < 1e-14) {
        t = next;
        break;
      }
      t = next;
    }
    const kappa = Math.exp(t);
    const { df1, df2 } = dfs(a, kappa);
    return { kappa, df1, df2 };
  }
  // f(κ) = κ − λ − (κ/n) Σ a/(a+κ): f(λ) < 0, f(λ + S/n) ≥ 0, unique root.
  let lo = lambda;
  let hi = lambda + total / n;
  let kappa = 0.5 * (lo + hi);
  for (let it = 0; it < 200; it++) {
    const { df1, df2 } = dfs(a, kappa);
    const f = kappa - lambda - (kappa * df1) / n;
    if (f < 0) lo = kappa;
    else hi = kappa;
    const slope = 1 - df2 / n;
    let next = slope > 0 ? kappa - f / slope : 0.5 * (lo + hi);
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (Math.abs(next - kappa) <= 1e-15 * kappa || hi - lo <= 1e-15 * hi) {
      kappa = next;
      break;
    }
    kappa = next;
  }
  const { df1, df2 } = dfs(a, kappa);
  return { kappa, df1, df2 };
}

/**
 * The risk from the feature spectrum a_i (eigenvalues of Ω; ≤ 0 = absent),
 * the signal g_i carried by each present direction, the total signal tr(ΣB)
 * and the downstream problem. Directions with a_i ≤ 0 must carry no g.
 */
function riskFromSpectrum(
  a: Float64Array,
  g: Float64Array,
  totalSignal: number,
  problem: DownstreamProblem,
): LinearTransferRisk {
  const { n, lambda, noiseVariance: noise } = problem;
  let rank = 0;
  let captured = 0;
  for (let i = 0; i < a.length; i++)
    if ((a[i] as number) > 0) {
      rank++;
      captured += g[i] as number;
    }
  const approximationError = Math.max(totalSignal - captured, 0);
  const effectiveNoise = noise + approximationError;
  const base = { approximationError, rank, totalSignal, capturedSignal: captured };
  if (lambda === 0 && rank > 0 && n === rank) {
    const inf = effectiveNoise > 0 ? Number.POSITIVE_INFINITY : 0;
    return {
      ...base,
      risk: inf + approximationError,
      bias: 0,
      variance: inf,
      varianceNoise: noise > 0 ? inf : 0,
      varianceMisspecification: approximationError > 0 ? inf : 0,
      kappa: 0,
      df1: rank,
      df2: rank,
      regime: 'interpolation-threshold',
    };
  }
  const { kappa, df1, df2 } = solveKappa(a, n, lambda, rank);
  const denom = 1 - df2 / n;
  let biasNum = 0;
  if (kappa > 0)
    for (let i = 0; i < a.length; i++) {
      const ai = a[i] as number;
      if (ai > 0) biasNum += (kappa * kappa * (g[i] as number)) / ((ai + kappa) * (ai + kappa));
    }
  const ratio = df2 / n / denom;
  const bias = biasNum / denom;
  const varianceNoise = noise * ratio;
  const varianceMisspecification = approximationError * ratio;
  return {
    ...base,
    risk: bias + varianceNoise + varianceMisspecification + approximationError,
    bias,
    variance: varianceNoise + varianceMisspecification,
    varianceNoise,
    varianceMisspecification,
    kappa,
    df1,
    df2,
    regime: lambda > 0 ? 'ridge' : n < rank ? 'overparameterized' : 'underparameterized',
  };
}

export interface LinearTransferInput extends DownstreamProblem {
  /** Σ = E[xxᵀ] (d×d). */
  sigma: MatrixLike;
  /** B = E[ββᵀ] over the task ensemble (d×d, PSD). A single task β is B = ββᵀ. */
  taskCovariance: MatrixLike;
  /** B̂ (d×k): the downstream model sees z = B̂ᵀx. */
  representation: MatrixLike;
}

/**
 * Asymptotic ensemble-averaged risk of ridge / min-norm regression on
 * z = B̂ᵀx, with its bias–variance split (see the module comment for the
 * derivation). Any B̂ (not only spectral ones); O(d³ + k³).
 */
export function linearTransferRisk(input: LinearTransferInput): LinearTransferRisk {
  validateProblem(NAME, input);
  const sigma = toDense(NAME, 'sigma', input.sigma);
  const b = toDense(NAME, 'taskCovariance', input.taskCovariance);
  const rep = toDense(NAME, 'representation', input.representation);
  const d = sigma.rows;
  if (sigma.cols !== d)
    throw new Error(`${NAME}: sigma must be square (d×d), got [${d}, ${sigma.cols}]`);
  if (b.rows !== d || b.cols !== d)
    throw new Error(
      `${NAME}: taskCovariance must be d×d with d = ${d} (the size of sigma), got [${b.rows}, ${b.cols}]`,
    );
  if (rep.rows !== d)
    throw new Error(
      `${NAME}: representation must be d×k with d = ${d} rows (the size of sigma), got [${rep.rows}, ${rep.cols}]`,
    );
  // PSD checks (symmetry included), by jittered Cholesky: no eigendecomposition needed.
  assertPositiveSemidefinite(sigma, NAME, 'sigma');
  assertPositiveSemidefinite(b, NAME, 'taskCovariance');
  const k = rep.cols;
  const sigmaRep = matmul(sigma, rep, NAME); // ΣB̂, d×k
  const omega = matmulTransposeA(rep, sigmaRep, NAME); // B̂ᵀΣB̂, k×k
  for (let i = 0; i < k; i++)
    for (let j = 0; j < i; j++) {
      const m = 0.5 * ((omega.data[i * k + j] as number) + (omega.data[j * k + i] as number));
      omega.data[i * k + j] = m;
      omega.data[j * k + i] = m;
    }
  const { values, vectors } = psdEigen(omega, NAME, 'representationᵀ·sigma·representation');
  // Signal matrix M = B̂ᵀΣ B ΣB̂ (k×k); g_i = v_iᵀMv_i / a_i.
  const m = matmulTransposeA(sigmaRep, matmul(b, sigmaRep, NAME), NAME);
  const top = values[0] as number;
  const a = new Float64Array(k);
  const g = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    const aj = values[j] as number;
    if (!(aj > 1e-12 * top)) continue;
    let quad = 0;
    for (let r = 0; r < k; r++) {
      let mv = 0;
      for (let c = 0; c < k; c++)
        mv += (m.data[r * k + c] as number) * (vectors[c * k + j] as number);
      quad += (vectors[r * k + j] as number) * mv;
    }
    a[j] = aj;
    g[j] = quad / aj;
  }
  let totalSignal = 0;
  // tr(ΣB)
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++)
      totalSignal += (sigma.data[i * d + j] as number) * (b.data[j * d + i] as number);
  return riskFromSpectrum(a, g, totalSignal, input);
}

// ————————————————————————————————— spectral representations —————————————————————————————————

/** Σ's eigen-structure with the task ensemble's variance along each eigendirection. */
export interface SpectralTaskProfile {
  /** s_i, eigenvalues of Σ, largest first. */
  sigmaEigenvalues: Float64Array;
  /** b_i = u_iᵀBu_i, task variance along eigendirection i. */
  taskVariances: Float64Array;
  /** Eigenvectors of Σ as columns (row-major d×d), when built from matrices. */
  eigenvectors?: Float64Array;
  /** ‖off-diagonal of UᵀBU‖_F / ‖UᵀBU‖_F: 0 when B commutes with Σ. Spectral risks only use b_i, so they are exact for any B. */
  offDiagonal: number;
}

/** The spectral profile of (Σ, B). */
export function spectralTaskProfile(
  sigma: MatrixLike,
  taskCovariance: MatrixLike,
): SpectralTaskProfile {
  const fn = 'spectralTaskProfile';
  const s = toDense(fn, 'sigma', sigma);
  const b = toDense(fn, 'taskCovariance', taskCovariance);
  const d = s.rows;
  if (s.cols !== d) throw new Error(`${fn}: sigma must be square, got [${d}, ${s.cols}]`);
  if (b.rows !== d || b.cols !== d)
    throw new Error(`${fn}: taskCovariance must be d×d with d = ${d}, got [${b.rows}, ${b.cols}]`);
  assertPositiveSemidefinite(b, fn, 'taskCovariance');
  const { values, vectors } = psdEigen(s, fn, 'sigma');
  const u: Dense = { rows: d, cols: d, data: vectors };
  const rotated = matmulTransposeA(u, matmul(b, u, fn), fn);
  const taskVariances = new Float64Array(d);
  let diag2 = 0;
  let off2 = 0;
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      const v = rotated.data[i * d + j] as number;
      if (i === j) {
        taskVariances[i] = Math.max(v, 0);
        diag2 += v * v;
      } else off2 += v * v;
    }
  return {
    sigmaEigenvalues: values,
    taskVariances,
    eigenvectors: vectors,
    offDiagonal: Math.sqrt(off2 / Math.max(diag2 + off2, 1e-300)),
  };
}

/** A profile from spectra directly (Σ diagonal in its own eigenbasis). */
export function spectralProfileFromSpectra(
  sigmaEigenvalues: ArrayLike<number>,
  taskVariances: ArrayLike<number>,
): SpectralTaskProfile {
  const fn = 'spectralProfileFromSpectra';
  const s = toVector(fn, 'sigmaEigenvalues', sigmaEigenvalues);
  const b = toVector(fn, 'taskVariances', taskVariances);
  if (s.length !== b.length)
    throw new Error(
      `${fn}: sigmaEigenvalues has ${s.length} entries but taskVariances has ${b.length}`,
    );
  for (let i = 0; i < s.length; i++) {
    if ((s[i] as number) < 0)
      throw new Error(`${fn}: sigmaEigenvalues[${i}] = ${s[i]} is negative`);
    if ((b[i] as number) < 0) throw new Error(`${fn}: taskVariances[${i}] = ${b[i]} is negative`);
  }
  return { sigmaEigenvalues: s, taskVariances: b, offDiagonal: 0 };
}

function checkWeights(
  fn: string,
  profile: SpectralTaskProfile,
  weights: ArrayLike<number>,
): Float64Array {
  const w = toVector(fn, 'weights', weights);
  const d = profile.sigmaEigenvalues.length;
  if (w.length !== d)
    throw new Error(
      `${fn}: weights has ${w.length} entries but the profile has d = ${d} directions`,
    );
  return w;
}

/** Feature eigenvalues a_i = w_i² s_i of B̂ = U diag(w). */
function featureSpectrum(profile: SpectralTaskProfile, w: Float64Array): Float64Array {
  const s = profile.sigmaEigenvalues;
  const a = new Float64Array(w.length);
  let top = 0;
  for (let i = 0; i < w.length; i++) {
    a[i] = (w[i] as number) ** 2 * (s[i] as number);
    top = Math.max(top, a[i] as number);
  }
  for (let i = 0; i < a.length; i++) if ((a[i] as number) <= 1e-14 * top) a[i] = 0;
  return a;
}

function spectralRiskFromA(
  profile: SpectralTaskProfile,
  a: Float64Array,
  problem: DownstreamProblem,
) {
  const s = profile.sigmaEigenvalues;
  const b = profile.taskVariances;
  const g = new Float64Array(a.length);
  let total = 0;
  for (let i = 0; i < a.length; i++) {
    const gi = (s[i] as number) * (b[i] as number);
    total += gi;
    if ((a[i] as number) > 0) g[i] = gi;
  }
  return riskFromSpectrum(a, g, total, problem);
}

/** Risk of the spectral representation B̂ = U diag(w) (exactly {@link linearTransferRisk} for that B̂). */
export function spectralRisk(
  profile: SpectralTaskProfile,
  weights: ArrayLike<number>,
  problem: DownstreamProblem,
): LinearTransferRisk {
  const fn = 'spectralRisk';
  validateProblem(fn, problem);
  return spectralRiskFromA(
    profile,
    featureSpectrum(profile, checkWeights(fn, profile, weights)),
    problem,
  );
}

/** B̂ = U diag(w) as a d×d matrix (needs a profile built from matrices). */
export function spectralRepresentationMatrix(
  profile: SpectralTaskProfile,
  weights: ArrayLike<number>,
): Dense {
  const fn = 'spectralRepresentationMatrix';
  const w = checkWeights(fn, profile, weights);
  const d = w.length;
  const out = zeros(d, d);
  const u = profile.eigenvectors;
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++)
      out.data[i * d + j] = (u ? (u[i * d + j] as number) : i === j ? 1 : 0) * (w[j] as number);
  return out;
}

/**
 * The "ground-truth" featurisation w_i = b_i^power: power 1/2 gives
 * B̂ = U diag(√b), which whitens the task prior (θ* = B̂⁻¹β is isotropic);
 * power 1 gives B̂ = B itself when B commutes with Σ.
 */
export function groundTruthRepresentation(profile: SpectralTaskProfile, power = 0.5): Float64Array {
  return profile.taskVariances.map((b) => (b > 0 ? b ** power : 0));
}

/** Indicator weights on the k directions with the largest signal s_i·b_i (the support featurisation). */
export function supportRepresentation(profile: SpectralTaskProfile, k: number): Float64Array {
  const d = profile.sigmaEigenvalues.length;
  if (!Number.isInteger(k) || k < 0 || k > d)
    throw new Error(`supportRepresentation: k must be an integer in [0, ${d}], got ${k}`);
  const order = signalOrder(profile);
  const w = new Float64Array(d);
  for (let j = 0; j < k; j++) w[order[j] as number] = 1;
  return w;
}

function signalOrder(profile: SpectralTaskProfile): number[] {
  const s = profile.sigmaEigenvalues;
  const b = profile.taskVariances;
  return Array.from(s.keys()).sort(
    (i, j) => (s[j] as number) * (b[j] as number) - (s[i] as number) * (b[i] as number),
  );
}

/**
 * Sample sizes where the min-norm risk of a representation diverges, from its
 * feature spectrum a_i = w_i² s_i: always n = rank (when there is noise or
 * misspecification); and, for every gap where the spectrum drops by more than
 * `gapRatio` between consecutive sorted eigenvalues, n = the number of
 * eigenvalues above the gap — a peak that becomes a divergence as the ratio
 * of the two scales → 0 (see the module comment). Returned ascending, with
 * the scale ratio of each gap (0 for the exact rank).
 */
export function minNormDivergences(
  profile: SpectralTaskProfile,
  weights: ArrayLike<number>,
  gapRatio = 1e-3,
): { n: number; scaleRatio: number }[] {
  const a = Array.from(
    featureSpectrum(profile, checkWeights('minNormDivergences', profile, weights)),
  )
    .filter((v) => v > 0)
    .sort((x, y) => y - x);
  const out: { n: number; scaleRatio: number }[] = [];
  for (let i = 0; i + 1 < a.length; i++) {
    const ratio = (a[i + 1] as number) / (a[i] as number);
    if (ratio < gapRatio) out.push({ n: i + 1, scaleRatio: ratio });
  }
  if (a.length > 0) out.push({ n: a.length, scaleRatio: 0 });
  return out;
}

// ————————————————————————————————— optimal representations —————————————————————————————————

/** Gradient of the spectral risk with respect to the feature eigenvalues a (κ > 0 only). */
function riskGradient(
  profile: SpectralTaskProfile,
  a: Float64Array,
  problem: DownstreamProblem,
): { risk: number; grad: Float64Array } {
  const r = spectralRiskFromA(profile, a, problem);
  const grad = new Float64Array(a.length);
  const { kappa, risk } = r;
  if (!(kappa > 0) || !Number.isFinite(risk)) return { risk, grad: grad.fill(Number.NaN) };
  const { n, noiseVariance: noise } = problem;
  const s = profile.sigmaEigenvalues;
  const b = profile.taskVariances;
  const D = 1 - r.df2 / n;
  const c1 = (noise + risk) / n;
  let G = 0;
  for (let i = 0; i < a.length; i++) {
    const ai = a[i] as number;
    const gi = (s[i] as number) * (b[i] as number);
    const den3 = (ai + kappa) ** 3;
    G += (2 * kappa * gi * ai) / den3 - (2 * c1 * ai * ai) / den3;
  }
  for (let j = 0; j < a.length; j++) {
    const aj = a[j] as number;
    const gj = (s[j] as number) * (b[j] as number);
    const den = aj + kappa;
    const partial = ((2 * kappa) / den ** 3) * (-kappa * gj + c1 * aj);
    const viaKappa = (G * kappa * kappa) / (n * den * den * D);
    grad[j] = (partial + viaKappa) / D;
  }
  return { risk, grad };
}

export interface OptimalSpectralRepresentation {
  /** w_i ≥ 0 for B̂ = U diag(w) (indicator weights in the hard regime). */
  weights: Float64Array;
  /** a_i = w_i² s_i, the feature eigenvalues. */
  featureEigenvalues: Float64Array;
  risk: number;
  /** 'hard': κ = 0, m < n directions selected, their weights irrelevant; 'soft': κ > 0, a ∝ (s·b − τ)₊. */
  regime: 'hard' | 'soft';
  /** Number of directions with w_i > 0. */
  support: number;
  /** τ of the soft family (hard: the smallest selected s·b). */
  threshold: number;
  /** Scale A of the soft family (1 for min-norm, where the scale is irrelevant). */
  scale: number;
  kappa: number;
  /** Best risk of the hard family (Infinity for λ > 0, where it is not a separate family). */
  hardRisk: number;
  /** Best risk of the soft family. */
  softRisk: number;
}

export interface OptimalRepresentationOptions {
  /** Grid points for the threshold search before golden-section refinement. Default 160. */
  gridSize?: number;
}

function goldenMinimize(
  f: (x: number) => number,
  lo: number,
  hi: number,
  iterations = 80,
): { x: number; fx: number } {
  const phi = (Math.sqrt(5) - 1) / 2;
  let a = lo;
  let b = hi;
  let c = b - phi * (b - a);
  let d = a + phi * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let i = 0; i < iterations; i++) {
    if (fc <= fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - phi * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + phi * (b - a);
      fd = f(d);
    }
  }
  return fc <= fd ? { x: c, fx: fc } : { x: d, fx: fd };
}

/**
 * The spectral representation B̂ = U diag(w) minimising the asymptotic risk.
 * Uses the stationarity structure derived in the module comment: the optimum
 * is either hard selection (min-norm only: the m < n directions of largest
 * s·b, m optimised exactly) or the soft family a = A(s·b − τ)₊ (τ, and A for
 * ridge, optimised by a grid plus golden-section search). Cross-checked in
 * the tests against projected gradient descent on all d weights
 * ({@link projectedGradientRepresentation}).
 */
export function optimalSpectralRepresentation(
  profile: SpectralTaskProfile,
  problem: DownstreamProblem,
  options: OptimalRepresentationOptions = {},
): OptimalSpectralRepresentation {
  const fn = 'optimalSpectralRepresentation';
  validateProblem(fn, problem);
  const s = profile.sigmaEigenvalues;
  const b = profile.taskVariances;
  const d = s.length;
  const { n, lambda, noiseVariance: noise } = problem;
  const order = signalOrder(profile);
  const signal = order.map((i) => (s[i] as number) * (b[i] as number));
  const gMax = signal[0] ?? 0;
  if (!(gMax > 0)) throw new Error(`${fn}: the task has no signal (s·b is 0 in every direction)`);
  const gridSize = options.gridSize ?? 160;

  // Hard family (κ = 0): m < n directions of largest s·b.
  let hardRisk = Number.POSITIVE_INFINITY;
  let hardM = 0;
  if (lambda === 0) {
    let total = 0;
    for (const g of signal) total += g;
    let tail = total;
    for (let m = 0; m <= Math.min(d, Math.ceil(n) - 1); m++) {
      if (m > 0) tail -= signal[m - 1] as number;
      if (m >= n) break;
      const r = (Math.max(tail, 0) + (noise * m) / n) / (1 - m / n);
      if (r < hardRisk) {
        hardRisk = r;
        hardM = m;
      }
    }
  }

  // Soft family a = A (s·b − τ)₊, parametrised by τ = gMax·(1 − e^u) … below.
  const familyA = (tau: number, scale: number): Float64Array => {
    const a = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      const g = (s[i] as number) * (b[i] as number);
      a[i] = (s[i] as number) > 0 ? scale * Math.max(g - tau, 0) : 0;
    }
    return a;
  };
  // For min-norm the soft family needs support > n (else κ = 0 and it is hard selection).
  const tauMax =
    lambda === 0 ? (n < d ? (signal[Math.floor(n)] ?? 0) : Number.NEGATIVE_INFINITY) : gMax;
  const softAt = (tau: number): { risk: number; scale: number } => {
    if (lambda === 0) {
      const a = familyA(tau, 1);
      const r = spectralRiskFromA(profile, a, problem);
      return {
        risk: r.regime === 'overparameterized' ? r.risk : Number.POSITIVE_INFINITY,
        scale: 1,
      };
    }
    // ridge: optimise log A
    const f = (logA: number) =>
      spectralRiskFromA(profile, familyA(tau, Math.exp(logA)), problem).risk;
    const center = Math.log((lambda * n) / Math.max(noise, 1e-12 * gMax) / gMax);
    const best = goldenMinimize(f, center - 30, center + 30, 90);
    return { risk: best.fx, scale: Math.exp(best.x) };
  };
  let softRisk = Number.POSITIVE_INFINITY;
  let softTau = 0;
  let softScale = 1;
  if (Number.isFinite(tauMax)) {
    // τ = tauMax − gMax·v with v on a log grid spanning below and above gMax.
    const vs: number[] = [];
    for (let i = 0; i < gridSize; i++) vs.push(10 ** (-8 + (12 * i) / (gridSize - 1)));
    const taus = vs.map((v) => tauMax - gMax * v);
    if (lambda > 0 && noise > 0) taus.push(0); // the Bayes point
    let bestI = -1;
    const risks = taus.map((t) => softAt(t).risk);
    risks.forEach((r, i) => {
      if (r < softRisk) {
        softRisk = r;
        bestI = i;
      }
    });
    if (bestI >= 0) {
      softTau = taus[bestI] as number;
      // refine in log v between the neighbours
      if (bestI < vs.length) {
        const lv = (i: number) => Math.log10(vs[Math.max(0, Math.min(vs.length - 1, i))] as number);
        const refined = goldenMinimize(
          (x) => softAt(tauMax - gMax * 10 ** x).risk,
          lv(bestI - 1),
          lv(bestI + 1),
          60,
        );
        if (refined.fx < softRisk) {
          softRisk = refined.fx;
          softTau = tauMax - gMax * 10 ** refined.x;
        }
      }
      softScale = softAt(softTau).scale;
    }
  }

  const useHard = hardRisk <= softRisk;
  let weights: Float64Array;
  if (useHard) {
    weights = new Float64Array(d);
    for (let j = 0; j < hardM; j++) weights[order[j] as number] = 1;
  } else {
    const a = familyA(softTau, softScale);
    weights = a.map((ai, i) => ((s[i] as number) > 0 ? Math.sqrt(ai / (s[i] as number)) : 0));
  }
  const a = featureSpectrum(profile, weights);
  const r = spectralRiskFromA(profile, a, problem);
  let support = 0;
  for (const w of weights) if (w > 0) support++;
  return {
    weights,
    featureEigenvalues: a,
    risk: r.risk,
    regime: useHard ? 'hard' : 'soft',
    support,
    threshold: useHard ? (hardM > 0 ? (signal[hardM - 1] as number) : gMax) : softTau,
    scale: useHard ? 1 : softScale,
    kappa: r.kappa,
    hardRisk,
    softRisk,
  };
}

/**
 * Projected gradient descent on the feature eigenvalues a ≥ 0 (then
 * w = √(a/s)), with the analytic gradient and backtracking. For min-norm the
 * risk is scale-free and a is renormalised to max 1 after every step. Stays
 * in the κ > 0 region (steps that would leave it are rejected). Slower than
 * {@link optimalSpectralRepresentation}; it exists to check it.
 */
export function projectedGradientRepresentation(
  profile: SpectralTaskProfile,
  problem: DownstreamProblem,
  initialWeights: ArrayLike<number>,
  options: { iterations?: number; tolerance?: number } = {},
): { weights: Float64Array; risk: number; iterations: number } {
  const fn = 'projectedGradientRepresentation';
  validateProblem(fn, problem);
  const iterations = options.iterations ?? 3000;
  const tolerance = options.tolerance ?? 1e-12;
  const s = profile.sigmaEigenvalues;
  let a = featureSpectrum(profile, checkWeights(fn, profile, initialWeights));
  let { risk, grad } = riskGradient(profile, a, problem);
  if (!Number.isFinite(risk) || Number.isNaN(grad[0] ?? 0))
    throw new Error(
      `${fn}: the initial weights must give κ > 0 (support > n for min-norm, or λ > 0)`,
    );
  let step = 1;
  let it = 0;
  let improvement = Number.POSITIVE_INFINITY;
  while (it < iterations && improvement >= tolerance * risk) {
    it++;
    let gmax = 0;
    for (const v of grad) gmax = Math.max(gmax, Math.abs(v));
    let amax = 0;
    for (const v of a) amax = Math.max(amax, v);
    let accepted = false;
    for (let ls = 0; ls < 60 && !accepted; ls++) {
      const eta = (step * amax) / Math.max(gmax, 1e-300);
      const next = new Float64Array(a.length);
      let nmax = 0;
      for (let i = 0; i < a.length; i++) {
        next[i] = Math.max((a[i] as number) - eta * (grad[i] as number), 0);
        nmax = Math.max(nmax, next[i] as number);
      }
      if (problem.lambda === 0 && nmax > 0)
        for (let i = 0; i < next.length; i++) next[i] = (next[i] as number) / nmax;
      const trial = riskGradient(profile, next, problem);
      if (Number.isFinite(trial.risk) && !Number.isNaN(trial.grad[0] ?? 0) && trial.risk < risk) {
        improvement = risk - trial.risk;
        a = next;
        risk = trial.risk;
        grad = trial.grad;
        step = Math.min(step * 2, 1);
        accepted = true;
      } else step *= 0.5;
    }
    if (!accepted) break;
  }
  const weights = a.map((ai, i) => ((s[i] as number) > 0 ? Math.sqrt(ai / (s[i] as number)) : 0));
  return { weights, risk, iterations: it };
}

export interface SelectionHardness {
  /** Directions with w_i > 0. */
  support: number;
  /** support / d. */
  fractionSelected: number;
  /** (Σw²)²/Σw⁴: effective number of selected directions. */
  participationRatio: number;
  /** participationRatio / support ∈ (0, 1]: 1 for indicator (hard) weights, smaller the more graded (soft) they are. */
  hardness: number;
}

/** How "hard" a spectral selection is. */
export function selectionHardness(weights: ArrayLike<number>): SelectionHardness {
  let support = 0;
  let s2 = 0;
  let s4 = 0;
  for (let i = 0; i < weights.length; i++) {
    const w2 = (weights[i] as number) ** 2;
    if (w2 > 0) support++;
    s2 += w2;
    s4 += w2 * w2;
  }
  const pr = s4 > 0 ? (s2 * s2) / s4 : 0;
  return {
    support,
    fractionSelected: weights.length > 0 ? support / weights.length : 0,
    participationRatio: pr,
    hardness: support > 0 ? pr / support : 1,
  };
}

export interface SelectionTransitionRow extends SelectionHardness {
  n: number;
  regime: 'hard' | 'soft';
  risk: number;
  hardRisk: number;
  softRisk: number;
}

/** The optimal spectral representation and its hardness along a grid of sample sizes. */
export function selectionTransition(
  profile: SpectralTaskProfile,
  ns: readonly number[],
  problem: Omit<DownstreamProblem, 'n'>,
  options: OptimalRepresentationOptions = {},
): SelectionTransitionRow[] {
  return ns.map((n) => {
    const opt = optimalSpectralRepresentation(profile, { ...problem, n }, options);
    return {
      n,
      regime: opt.regime,
      risk: opt.risk,
      hardRisk: opt.hardRisk,
      softRisk: opt.softRisk,
      ...selectionHardness(opt.weights),
    };
  });
}
