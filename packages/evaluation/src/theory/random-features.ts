/**
 * Gaussian-equivalent covariances of random (or frozen) features on the
 * hidden-manifold latent, for the GCM solver.
 *
 * Setting (Gerace et al. 2022, arXiv 2106.05418): a latent c ~ N(0, I_D), a
 * feature matrix F (D×p) and student features x = σ(Fᵀc/√D) ∈ R^p; the
 * teacher acts on the latent, z₀ = θᵀc/√D, so the teacher features are u = c
 * (k = D, Ψ = I_D).
 *
 * Gaussian equivalence. Write h = Fᵀc/√D; when every column has ‖F_i‖² ≈ D,
 * each h_i is ~N(0, 1) and distinct h_i, h_j have small correlation
 * ρ_ij = F_iᵀF_j/D = O(1/√D). With the Hermite coefficients of σ
 *   κ₀ = E σ(ξ),  κ₁ = E ξσ(ξ) = E σ'(ξ),  κ*² = E σ(ξ)² − κ₀² − κ₁²
 * (ξ ~ N(0, 1)), the Mehler expansion gives
 *   E σ(h_i)σ(h_j) = κ₀² + κ₁² ρ_ij + O(ρ_ij²) (i ≠ j),  E σ(h_i)² = κ₀² + κ₁² + κ*²,
 * and Stein's lemma gives E σ(h_i) c = E σ'(h_i) · F_i/√D = κ₁ F_i/√D exactly.
 * Hence the features behave, to second order, like
 * x ≈ κ₀1 + κ₁ Fᵀc/√D + κ* ζ with ζ ~ N(0, I_p) independent of c:
 *   Ω = E xxᵀ = κ₀² 11ᵀ + κ₁² FᵀF/D + κ*² I_p,  Φ = E x cᵀ = κ₁ Fᵀ/√D,  Ψ = I_D.
 * (Ω is the second moment; the κ₀² 11ᵀ term is the feature mean, one rank-one
 * direction, which moves the risk only by O(1/p).)
 */
import type { MatrixLike } from '../estimators/matrix.js';
import { toDense } from '../estimators/matrix.js';
import { type Dense, identity, matmulTransposeA, transpose } from '../linalg/dense.js';
import { erf } from './special.js';

export type Activation = 'relu' | 'erf' | 'tanh' | 'sign' | 'linear';

export interface GaussianEquivalence {
  /** E σ(ξ). */
  kappa0: number;
  /** E ξσ(ξ). */
  kappa1: number;
  /** √(E σ(ξ)² − κ₀² − κ₁²). */
  kappaStar: number;
}

/**
 * Exact coefficients for the built-in activations: relu (1/√(2π), 1/2,
 * √((π−2)/(4π))); erf (0, 2/√(3π), √((2/π)·arcsin(2/3) − 4/(3π)) ≈ 0.200364);
 * sign (0, √(2/π), √(1 − 2/π)); tanh by quadrature (κ₁ ≈ 0.605706,
 * κ* ≈ 0.165576, checked in the tests).
 */
export const GAUSSIAN_EQUIVALENCE: Readonly<Record<Activation, GaussianEquivalence>> = {
  relu: {
    kappa0: 1 / Math.sqrt(2 * Math.PI),
    kappa1: 0.5,
    kappaStar: Math.sqrt((Math.PI - 2) / (4 * Math.PI)),
  },
  erf: {
    kappa0: 0,
    kappa1: 2 / Math.sqrt(3 * Math.PI),
    kappaStar: Math.sqrt((2 / Math.PI) * Math.asin(2 / 3) - 4 / (3 * Math.PI)),
  },
  tanh: { kappa0: 0, kappa1: 0.605705509602159, kappaStar: 0.1655757410837411 },
  sign: { kappa0: 0, kappa1: Math.sqrt(2 / Math.PI), kappaStar: Math.sqrt(1 - 2 / Math.PI) },
  linear: { kappa0: 0, kappa1: 1, kappaStar: 0 },
};

/** The activation as a function (sign(0) = 0). */
export function activationFunction(activation: Activation): (z: number) => number {
  switch (activation) {
    case 'relu':
      return (z) => Math.max(z, 0);
    case 'erf':
      return erf;
    case 'tanh':
      return Math.tanh;
    case 'sign':
      return Math.sign;
    case 'linear':
      return (z) => z;
    default:
      throw new Error(
        `activationFunction: unknown activation '${String(activation)}' (expected relu, erf, tanh, sign or linear)`,
      );
  }
}

/**
 * (κ₀, κ₁, κ*) of any activation by quadrature: composite Gauss–Legendre on
 * [−12, 0] and [0, 12] (split at 0 so that kinks there — relu, sign — do not
 * spoil the accuracy) against the standard normal density. Accurate to ~1e-12
 * for activations that are smooth away from 0 and grow at most polynomially.
 */
export function gaussianEquivalenceCoefficients(
  activation: Activation | ((z: number) => number),
): GaussianEquivalence {
  const f = typeof activation === 'function' ? activation : activationFunction(activation);
  // 5-point Gauss–Legendre on each of 240 panels per half-line.
  const gl = [
    [0, 128 / 225],
    [Math.sqrt(5 - 2 * Math.sqrt(10 / 7)) / 3, (322 + 13 * Math.sqrt(70)) / 900],
    [-Math.sqrt(5 - 2 * Math.sqrt(10 / 7)) / 3, (322 + 13 * Math.sqrt(70)) / 900],
    [Math.sqrt(5 + 2 * Math.sqrt(10 / 7)) / 3, (322 - 13 * Math.sqrt(70)) / 900],
    [-Math.sqrt(5 + 2 * Math.sqrt(10 / 7)) / 3, (322 - 13 * Math.sqrt(70)) / 900],
  ] as const;
  const panels = 240;
  const half = 12;
  let e0 = 0;
  let e1 = 0;
  let e2 = 0;
  const h = half / panels;
  for (const sideStart of [-half, 0]) {
    for (let j = 0; j < panels; j++) {
      const mid = sideStart + (j + 0.5) * h;
      for (const [node, weight] of gl) {
        const z = mid + 0.5 * h * node;
        const w = 0.5 * h * weight * Math.exp(-0.5 * z * z);
        const v = f(z);
        e0 += w * v;
        e1 += w * z * v;
        e2 += w * v * v;
      }
    }
  }
  const norm = 1 / Math.sqrt(2 * Math.PI);
  e0 *= norm;
  e1 *= norm;
  e2 *= norm;
  const star2 = e2 - e0 * e0 - e1 * e1;
  return { kappa0: e0, kappa1: e1, kappaStar: Math.sqrt(Math.max(star2, 0)) };
}

export interface RandomFeaturesCovariances {
  /** Ω = κ₀² 11ᵀ + κ₁² FᵀF/D + κ*² I (p×p). */
  omega: Dense;
  /** Φ = κ₁ Fᵀ/√D (p×D). */
  phi: Dense;
  /** Ψ = I_D. */
  psi: Dense;
  coefficients: GaussianEquivalence;
}

/**
 * Gaussian-equivalent (Ω, Φ, Ψ) of x = σ(Fᵀc/√D), c ~ N(0, I_D), with the
 * teacher on the latent (u = c). `features` is F, D×p (column i is the
 * direction of feature i; columns should have squared norm ≈ D, as for i.i.d.
 * N(0, 1) entries, so that pre-activations have unit variance).
 */
export function randomFeaturesCovariances(
  features: MatrixLike,
  activation: Activation | GaussianEquivalence,
): RandomFeaturesCovariances {
  const fn = 'randomFeaturesCovariances';
  const f = toDense(fn, 'features', features);
  const coefficients =
    typeof activation === 'string' ? GAUSSIAN_EQUIVALENCE[activation] : activation;
  if (!coefficients)
    throw new Error(
      `${fn}: unknown activation '${String(activation)}' (expected relu, erf, tanh, sign or {kappa0, kappa1, kappaStar})`,
    );
  const { kappa0, kappa1, kappaStar } = coefficients;
  const d = f.rows;
  const p = f.cols;
  const omega = matmulTransposeA(f, f, fn);
  const k02 = kappa0 * kappa0;
  const k12 = kappa1 * kappa1;
  for (let i = 0; i < p * p; i++) omega.data[i] = k02 + (k12 * (omega.data[i] as number)) / d;
  for (let i = 0; i < p; i++)
    omega.data[i * p + i] = (omega.data[i * p + i] as number) + kappaStar * kappaStar;
  const phi = transpose(f);
  const s = kappa1 / Math.sqrt(d);
  for (let i = 0; i < phi.data.length; i++) phi.data[i] = s * (phi.data[i] as number);
  return { omega, phi, psi: identity(d), coefficients };
}

/** A random-features map u = σ(Fᵀc/√d) of the latent c ∈ R^d: F is d×width. */
export interface FeatureMap {
  /** F, d×width (columns of squared norm ≈ d give unit-variance pre-activations). */
  features: MatrixLike;
  activation: Activation | GaussianEquivalence;
}

export interface TwoFeatureMapCovariances {
  /** Ω = E xxᵀ = κ₀² 11ᵀ + κ₁² FᵀF/d + κ*² I_p. */
  omega: Dense;
  /** Φ = E x uᵀ = κ₀κ̄₀ 11ᵀ + κ₁κ̄₁ FᵀF̄/d (p×k). */
  phi: Dense;
  /** Ψ = E uuᵀ = κ̄₀² 11ᵀ + κ̄₁² F̄ᵀF̄/d + κ̄*² I_k. */
  psi: Dense;
  student: GaussianEquivalence;
  teacher: GaussianEquivalence;
}

function coefficientsOf(fn: string, who: string, a: Activation | GaussianEquivalence) {
  const c = typeof a === 'string' ? GAUSSIAN_EQUIVALENCE[a] : a;
  if (!c)
    throw new Error(
      `${fn}: unknown ${who} activation '${String(a)}' (expected relu, erf, tanh, sign, linear or {kappa0, kappa1, kappaStar})`,
    );
  return c;
}

/**
 * Gaussian-equivalent covariances of a student x = σ(Fᵀc/√d) ∈ R^p and a
 * teacher u = σ̄(F̄ᵀc/√d) ∈ R^k on one latent c ~ N(0, I_d), each map with
 * its own projection, width and activation (the hidden-manifold teacher of
 * Loureiro et al. 2021, labels y = sign(θᵀu/√k)). Both maps are replaced by
 * their Gaussian equivalents κ₀1 + κ₁Fᵀc/√d + κ*ζ (module comment) with
 * independent noises ζ, ζ̄ — the two maps share only the latent — so
 *   Ω = κ₀² 11ᵀ + κ₁² FᵀF/d + κ*² I_p,
 *   Φ = κ₀κ̄₀ 11ᵀ + κ₁κ̄₁ FᵀF̄/d,
 *   Ψ = κ̄₀² 11ᵀ + κ̄₁² F̄ᵀF̄/d + κ̄*² I_k.
 * The cross term is exact to first order in the pre-activations' correlation
 * F_iᵀF̄_j/d = O(1/√d) (Mehler); the diagonal needs unit-variance
 * pre-activations (‖F_i‖² = d). A linear teacher with F̄ = √d I gives
 * {@link randomFeaturesCovariances}.
 */
export function twoFeatureMapCovariances(
  student: FeatureMap,
  teacher: FeatureMap,
): TwoFeatureMapCovariances {
  const fn = 'twoFeatureMapCovariances';
  const f = toDense(fn, 'student.features', student.features);
  const g = toDense(fn, 'teacher.features', teacher.features);
  if (f.rows !== g.rows)
    throw new Error(
      `${fn}: the student's F has ${f.rows} rows and the teacher's ${g.rows}; both act on one latent of dimension d`,
    );
  const cs = coefficientsOf(fn, 'student', student.activation);
  const ct = coefficientsOf(fn, 'teacher', teacher.activation);
  const d = f.rows;
  const second = (a: Dense, b: Dense, k0: number, k1: number, star2: number): Dense => {
    const m = matmulTransposeA(a, b, fn);
    for (let i = 0; i < m.data.length; i++) m.data[i] = k0 + (k1 * (m.data[i] as number)) / d;
    if (star2 !== 0)
      for (let i = 0; i < m.rows; i++)
        m.data[i * m.cols + i] = (m.data[i * m.cols + i] as number) + star2;
    return m;
  };
  return {
    omega: second(f, f, cs.kappa0 ** 2, cs.kappa1 ** 2, cs.kappaStar ** 2),
    phi: second(f, g, cs.kappa0 * ct.kappa0, cs.kappa1 * ct.kappa1, 0),
    psi: second(g, g, ct.kappa0 ** 2, ct.kappa1 ** 2, ct.kappaStar ** 2),
    student: cs,
    teacher: ct,
  };
}
