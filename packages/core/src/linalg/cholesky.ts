/**
 * Dense Cholesky factorisation and triangular solves on plain arrays, in
 * float64. Row-major n×n (and n×k) layouts throughout. These are the numeric
 * kernels behind `choleskySolve`; they know nothing about tensors.
 */

export class NotPositiveDefiniteError extends Error {
  constructor(
    /** 0-based index of the pivot that failed. */
    readonly pivot: number,
    /** The value under the square root at that pivot (≤ 0 or not finite). */
    readonly value: number,
    readonly size: number,
    context = 'cholesky',
  ) {
    super(
      `${context}: matrix is not symmetric positive definite: Cholesky pivot ${pivot} (0-based, of ${size}) is ${value}` +
        ` — the leading ${pivot + 1}×${pivot + 1} minor is not positive definite` +
        ' (add a ridge λI, or check the matrix for duplicated or collapsed rows)',
    );
    this.name = 'NotPositiveDefiniteError';
  }
}

/**
 * Lower-triangular L with A = L Lᵀ, reading only the lower triangle of `a`
 * (row-major n×n). Throws `NotPositiveDefiniteError` naming the first pivot
 * that is not strictly positive.
 */
export function choleskyFactor(
  a: ArrayLike<number>,
  n: number,
  context = 'choleskyFactor',
): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = a[rj + j] as number;
    for (let k = 0; k < j; k++) {
      const v = l[rj + k] as number;
      d -= v * v;
    }
    if (!(d > 0) || !Number.isFinite(d)) throw new NotPositiveDefiniteError(j, d, n, context);
    const ljj = Math.sqrt(d);
    l[rj + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = a[ri + j] as number;
      for (let k = 0; k < j; k++) s -= (l[ri + k] as number) * (l[rj + k] as number);
      l[ri + j] = s / ljj;
    }
  }
  return l;
}

/**
 * Solve (L Lᵀ) X = B for X given the Cholesky factor L (n×n) and B (n×k):
 * a forward substitution with L, then a backward one with Lᵀ. Both read L
 * row by row.
 */
export function choleskySolveFactored(
  l: Float64Array,
  n: number,
  b: ArrayLike<number>,
  k: number,
): Float64Array {
  const x = Float64Array.from(b as ArrayLike<number>);
  // L y = b, in place.
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    const xi = i * k;
    for (let p = 0; p < i; p++) {
      const lip = l[ri + p] as number;
      if (lip === 0) continue;
      const xp = p * k;
      for (let c = 0; c < k; c++) x[xi + c] = (x[xi + c] as number) - lip * (x[xp + c] as number);
    }
    const inv = 1 / (l[ri + i] as number);
    for (let c = 0; c < k; c++) x[xi + c] = (x[xi + c] as number) * inv;
  }
  // Lᵀ x = y, in place: once row i of x is final, remove its contribution
  // (column i of Lᵀ = row i of L) from the rows above.
  for (let i = n - 1; i >= 0; i--) {
    const ri = i * n;
    const xi = i * k;
    const inv = 1 / (l[ri + i] as number);
    for (let c = 0; c < k; c++) x[xi + c] = (x[xi + c] as number) * inv;
    for (let p = 0; p < i; p++) {
      const lip = l[ri + p] as number;
      if (lip === 0) continue;
      const xp = p * k;
      for (let c = 0; c < k; c++) x[xp + c] = (x[xp + c] as number) - lip * (x[xi + c] as number);
    }
  }
  return x;
}
