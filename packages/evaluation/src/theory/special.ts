/**
 * Special functions and quadrature for the theory module: erf / erfc (which
 * JavaScript lacks), the standard normal density, numerically safe logistic
 * helpers, and Gauss–Hermite nodes for expectations over N(0, 1).
 */
import { symmetricEigen } from '../estimators/linalg.js';

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const INV_SQRT_PI = 1 / Math.sqrt(Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * erf(x) for 0 ≤ x < 2 from the everywhere-positive series
 * erf(x) = (2/√π) e^{−x²} Σ_{j≥0} (2x²)^j x / (1·3·…·(2j+1)),
 * which has no cancellation (every term is positive).
 */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let j = 1; j < 200; j++) {
    term *= (2 * x2) / (2 * j + 1);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/**
 * erfc(x) for x ≥ 2 from the continued fraction
 * erfc(x) = (e^{−x²}/√π) · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))),
 * evaluated with the modified Lentz method.
 */
function erfcContinuedFraction(x: number): number {
  const tiny = 1e-300;
  // f = b0 + a1/(b1 + a2/(b2 + …)) with b_j = x and a_j = j/2.
  let f = x;
  let c = x;
  let d = 0;
  for (let j = 1; j < 500; j++) {
    const a = j / 2;
    d = x + a * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = x + a / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return (INV_SQRT_PI * Math.exp(-x * x)) / f;
}

/** The error function, to ~1e-15 relative accuracy. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const ax = Math.abs(x);
  const v = ax < 2 ? erfSeries(ax) : 1 - erfcContinuedFraction(ax);
  return x < 0 ? -v : v;
}

/** The complementary error function 1 − erf(x), accurate in the tails (relative ~1e-14). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x >= 2) return erfcContinuedFraction(x);
  if (x <= -2) return 2 - erfcContinuedFraction(-x);
  return 1 - (x < 0 ? -erfSeries(-x) : erfSeries(x));
}

/** Standard normal density. */
export function normalPdf(x: number): number {
  return INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

/** Standard normal distribution function Φ(x) = ½ erfc(−x/√2). */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/** The logistic function 1/(1 + e^{−t}), without overflow. */
export function sigmoid(t: number): number {
  if (t >= 0) return 1 / (1 + Math.exp(-t));
  const e = Math.exp(t);
  return e / (1 + e);
}

/** The logistic loss log(1 + e^{−t}), without overflow or cancellation. */
export function logisticLoss(t: number): number {
  return t > 0 ? Math.log1p(Math.exp(-t)) : -t + Math.log1p(Math.exp(t));
}

export interface GaussHermiteRule {
  /** Nodes ξ_j, ascending. */
  nodes: Float64Array;
  /** Weights w_j, summing to 1: E f(ξ) ≈ Σ_j w_j f(ξ_j) for ξ ~ N(0, 1). */
  weights: Float64Array;
}

const ruleCache = new Map<number, GaussHermiteRule>();

/**
 * The n-point Gauss–Hermite rule for the standard normal weight
 * e^{−ξ²/2}/√(2π) (probabilists' Hermite polynomials), exact for polynomials
 * of degree ≤ 2n − 1. Computed by Golub–Welsch: the monic recurrence
 * He_{j+1}(ξ) = ξ He_j(ξ) − j He_{j−1}(ξ) gives the symmetric tridiagonal
 * Jacobi matrix with zero diagonal and off-diagonal √j (j = 1..n−1); its
 * eigenvalues are the nodes and the squared first components of its unit
 * eigenvectors the weights (the weight function has total mass 1).
 * Rules are memoised per n (they are immutable once built).
 */
export function gaussHermite(n: number): GaussHermiteRule {
  if (!Number.isInteger(n) || n < 1 || n > 400)
    throw new Error(`gaussHermite: the number of nodes must be an integer in [1, 400], got ${n}`);
  const cached = ruleCache.get(n);
  if (cached) return cached;
  const jacobi = new Float64Array(n * n);
  for (let j = 1; j < n; j++) {
    const b = Math.sqrt(j);
    jacobi[(j - 1) * n + j] = b;
    jacobi[j * n + (j - 1)] = b;
  }
  const { values, vectors } = symmetricEigen(jacobi, n);
  // values are largest first; emit ascending.
  const nodes = new Float64Array(n);
  const weights = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    const src = n - 1 - k;
    nodes[k] = values[src] as number;
    const first = vectors[src] as number; // row 0, column src
    weights[k] = first * first;
    total += first * first;
  }
  for (let k = 0; k < n; k++) weights[k] = (weights[k] as number) / total;
  // Symmetrise: the exact rule is symmetric about 0.
  for (let k = 0; k < n >> 1; k++) {
    const j = n - 1 - k;
    const x = 0.5 * ((nodes[j] as number) - (nodes[k] as number));
    const w = 0.5 * ((weights[j] as number) + (weights[k] as number));
    nodes[k] = -x;
    nodes[j] = x;
    weights[k] = w;
    weights[j] = w;
  }
  if (n % 2 === 1) nodes[n >> 1] = 0;
  const rule = { nodes, weights };
  ruleCache.set(n, rule);
  return rule;
}
