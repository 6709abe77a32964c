/**
 * Small dense linear algebra in Float64 for the estimators: a symmetric
 * eigensolver (cyclic Jacobi) and a Cholesky factorisation. Matrices are flat
 * row-major Float64Arrays of size d*d.
 */

export interface SymmetricEigen {
  /** Eigenvalues, largest first. */
  values: Float64Array;
  /** Eigenvectors as columns, row-major d×d: vector k is `vectors[i * d + k]`, i = 0..d-1. */
  vectors: Float64Array;
  /** Jacobi sweeps used. */
  sweeps: number;
}

export interface SymmetricEigenOptions {
  /** Give up (throw) after this many sweeps; default 60 (Jacobi needs ~6–12). */
  maxSweeps?: number;
}

/**
 * Eigendecomposition A = V diag(λ) Vᵀ of a symmetric d×d matrix by the cyclic
 * Jacobi method: sweep over all pairs (p, q), p < q, and zero a_pq with a plane
 * rotation J (cos c, sin s, tan t chosen as the smaller root of
 * t² + 2θt − 1 = 0, θ = (a_qq − a_pp) / (2 a_pq)), A ← JᵀAJ, V ← VJ, until no
 * off-diagonal entry is above rounding level: |a_pq| ≤ 1e-16·√|a_pp a_qq| or
 * |a_pq| ≤ 1e-18·‖A‖_F. This criterion also gives small eigenvalues of
 * positive definite matrices to high relative accuracy.
 *
 * Cost: ~6d³ flops per sweep (A and V), 10–14 sweeps. Measured CPU time on
 * one core here: d = 256 ≈ 0.8 s, d = 512 ≈ 10 s in total; it grows like d³,
 * so d = 2048 would take minutes. Fine for the feature widths of small models;
 * callers with wide features should decompose the smaller of the two Gram
 * matrices (LogME does).
 *
 * The input is not modified. It must be symmetric (checked to 1e-10 relative).
 */
export function symmetricEigen(
  matrix: Float64Array,
  d: number,
  options: SymmetricEigenOptions = {},
): SymmetricEigen {
  if (!Number.isInteger(d) || d < 1) throw new Error(`symmetricEigen: bad dimension ${d}`);
  if (matrix.length !== d * d)
    throw new Error(`symmetricEigen: expected ${d * d} values for d = ${d}, got ${matrix.length}`);
  const maxSweeps = options.maxSweeps ?? 60;
  const a = Float64Array.from(matrix);
  let frob2 = 0;
  for (let k = 0; k < a.length; k++) {
    const v = a[k] as number;
    if (!Number.isFinite(v)) throw new Error(`symmetricEigen: non-finite entry ${v} at ${k}`);
    frob2 += v * v;
  }
  const frob = Math.sqrt(frob2);
  for (let i = 0; i < d; i++)
    for (let j = i + 1; j < d; j++) {
      const x = a[i * d + j] as number;
      const y = a[j * d + i] as number;
      if (Math.abs(x - y) > 1e-10 * frob)
        throw new Error(`symmetricEigen: matrix is not symmetric at (${i}, ${j}): ${x} vs ${y}`);
      const m = 0.5 * (x + y);
      a[i * d + j] = m;
      a[j * d + i] = m;
    }
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  const absFloor = 1e-18 * frob;

  let sweeps = 0;
  for (; ; sweeps++) {
    let rotated = false;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q] as number;
        if (apq === 0) continue;
        const app = a[p * d + p] as number;
        const aqq = a[q * d + q] as number;
        if (
          Math.abs(apq) <= absFloor ||
          Math.abs(apq) <= 1e-16 * Math.sqrt(Math.abs(app) * Math.abs(aqq))
        ) {
          a[p * d + q] = 0;
          a[q * d + p] = 0;
          continue;
        }
        rotated = true;
        const theta = (aqq - app) / (2 * apq);
        const t =
          theta >= 0
            ? 1 / (theta + Math.sqrt(theta * theta + 1))
            : -1 / (-theta + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        a[p * d + p] = app - t * apq;
        a[q * d + q] = aqq + t * apq;
        a[p * d + q] = 0;
        a[q * d + p] = 0;
        const rp = p * d;
        const rq = q * d;
        for (let r = 0; r < d; r++) {
          if (r === p || r === q) continue;
          const arp = a[rp + r] as number;
          const arq = a[rq + r] as number;
          const np = c * arp - s * arq;
          const nq = s * arp + c * arq;
          a[rp + r] = np;
          a[rq + r] = nq;
          a[r * d + p] = np;
          a[r * d + q] = nq;
        }
        // v holds Vᵀ (eigenvectors as rows), so these updates are contiguous.
        const vp = p * d;
        const vq = q * d;
        for (let r = 0; r < d; r++) {
          const vrp = v[vp + r] as number;
          const vrq = v[vq + r] as number;
          v[vp + r] = c * vrp - s * vrq;
          v[vq + r] = s * vrp + c * vrq;
        }
      }
    }
    if (!rotated) break;
    if (sweeps + 1 >= maxSweeps)
      throw new Error(`symmetricEigen: no convergence after ${maxSweeps} Jacobi sweeps (d = ${d})`);
  }

  const order = Array.from({ length: d }, (_, i) => i).sort(
    (i, j) => (a[j * d + j] as number) - (a[i * d + i] as number),
  );
  const values = new Float64Array(d);
  const vectors = new Float64Array(d * d);
  order.forEach((src, k) => {
    values[k] = a[src * d + src] as number;
    for (let i = 0; i < d; i++) vectors[i * d + k] = v[src * d + i] as number;
  });
  return { values, vectors, sweeps: sweeps + 1 };
}

/**
 * Cholesky factor L (lower triangular, row-major) with A = L Lᵀ, for a
 * symmetric positive definite d×d matrix. Throws, naming the pivot, when A is
 * not positive definite.
 */
export function cholesky(matrix: Float64Array, d: number): Float64Array {
  if (matrix.length !== d * d)
    throw new Error(`cholesky: expected ${d * d} values for d = ${d}, got ${matrix.length}`);
  const l = new Float64Array(d * d);
  for (let j = 0; j < d; j++) {
    let diag = matrix[j * d + j] as number;
    for (let k = 0; k < j; k++) diag -= (l[j * d + k] as number) ** 2;
    if (!(diag > 0))
      throw new Error(`cholesky: matrix is not positive definite (pivot ${j} is ${diag})`);
    const ljj = Math.sqrt(diag);
    l[j * d + j] = ljj;
    for (let i = j + 1; i < d; i++) {
      let s = matrix[i * d + j] as number;
      for (let k = 0; k < j; k++) s -= (l[i * d + k] as number) * (l[j * d + k] as number);
      l[i * d + j] = s / ljj;
    }
  }
  return l;
}

/** Solves L z = b for lower-triangular row-major L (forward substitution). */
export function forwardSubstitute(l: Float64Array, d: number, b: ArrayLike<number>): Float64Array {
  const z = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = b[i] as number;
    for (let k = 0; k < i; k++) s -= (l[i * d + k] as number) * (z[k] as number);
    z[i] = s / (l[i * d + i] as number);
  }
  return z;
}

/**
 * log N(y; 0, Σ) for a symmetric positive definite Σ (n×n), by Cholesky:
 * −½(n log 2π + log|Σ| + yᵀΣ⁻¹y) with log|Σ| = 2 Σ log L_ii and
 * yᵀΣ⁻¹y = ‖L⁻¹y‖².
 */
export function gaussianLogDensity(y: ArrayLike<number>, cov: Float64Array): number {
  const n = y.length;
  const l = cholesky(cov, n);
  const z = forwardSubstitute(l, n, y);
  let logDet = 0;
  let quad = 0;
  for (let i = 0; i < n; i++) {
    logDet += 2 * Math.log(l[i * n + i] as number);
    quad += (z[i] as number) ** 2;
  }
  return -0.5 * (n * Math.log(2 * Math.PI) + logDet + quad);
}
