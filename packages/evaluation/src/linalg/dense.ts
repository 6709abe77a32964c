/**
 * Small dense Float64 helpers for the theory module: products, symmetry and
 * positive-(semi)definiteness checks, and SPD solves.
 *
 * The heavy kernels are not duplicated here: the symmetric eigensolver is the
 * cyclic Jacobi one in `estimators/linalg.ts`, and the Cholesky factorisation
 * and solves are `choleskyFactor` / `choleskySolveFactored` from
 * `@transferlab/core`. Matrices use the estimators' internal `Dense` form
 * (row-major Float64Array plus shape).
 */
import { choleskyFactor, choleskySolveFactored, NotPositiveDefiniteError } from '@transferlab/core';
import { symmetricEigen } from '../estimators/linalg.js';
import type { Dense } from '../estimators/matrix.js';

export type { Dense };

/** A fresh rows×cols zero matrix. */
export function zeros(rows: number, cols: number): Dense {
  return { rows, cols, data: new Float64Array(rows * cols) };
}

/** The n×n identity. */
export function identity(n: number): Dense {
  const m = zeros(n, n);
  for (let i = 0; i < n; i++) m.data[i * n + i] = 1;
  return m;
}

/** A diagonal matrix with the given diagonal. */
export function diagonal(values: ArrayLike<number>): Dense {
  const n = values.length;
  const m = zeros(n, n);
  for (let i = 0; i < n; i++) m.data[i * n + i] = values[i] as number;
  return m;
}

/** Aᵀ. */
export function transpose(a: Dense): Dense {
  const out = zeros(a.cols, a.rows);
  const { rows, cols, data } = a;
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) out.data[j * rows + i] = data[i * cols + j] as number;
  return out;
}

/** A B, with a shape check naming `context`. */
export function matmul(a: Dense, b: Dense, context = 'matmul'): Dense {
  if (a.cols !== b.rows)
    throw new Error(
      `${context}: cannot multiply [${a.rows}, ${a.cols}] by [${b.rows}, ${b.cols}] (inner dimensions ${a.cols} ≠ ${b.rows})`,
    );
  const n = a.rows;
  const m = a.cols;
  const p = b.cols;
  const out = new Float64Array(n * p);
  const ad = a.data;
  const bd = b.data;
  // i-k-j order: the inner loop walks rows of B and of the output contiguously.
  for (let i = 0; i < n; i++) {
    const oi = i * p;
    for (let k = 0; k < m; k++) {
      const aik = ad[i * m + k] as number;
      if (aik === 0) continue;
      const bk = k * p;
      for (let j = 0; j < p; j++)
        out[oi + j] = (out[oi + j] as number) + aik * (bd[bk + j] as number);
    }
  }
  return { rows: n, cols: p, data: out };
}

/** Aᵀ B without forming Aᵀ. */
export function matmulTransposeA(a: Dense, b: Dense, context = 'matmulTransposeA'): Dense {
  if (a.rows !== b.rows)
    throw new Error(
      `${context}: cannot multiply [${a.rows}, ${a.cols}]ᵀ by [${b.rows}, ${b.cols}] (${a.rows} ≠ ${b.rows} rows)`,
    );
  const n = a.rows;
  const p = a.cols;
  const q = b.cols;
  const out = new Float64Array(p * q);
  const ad = a.data;
  const bd = b.data;
  for (let r = 0; r < n; r++) {
    const ar = r * p;
    const br = r * q;
    for (let i = 0; i < p; i++) {
      const ari = ad[ar + i] as number;
      if (ari === 0) continue;
      const oi = i * q;
      for (let j = 0; j < q; j++)
        out[oi + j] = (out[oi + j] as number) + ari * (bd[br + j] as number);
    }
  }
  return { rows: p, cols: q, data: out };
}

/** A x. */
export function matvec(a: Dense, x: ArrayLike<number>, context = 'matvec'): Float64Array {
  if (x.length !== a.cols)
    throw new Error(
      `${context}: matrix is [${a.rows}, ${a.cols}] but the vector has length ${x.length}`,
    );
  const out = new Float64Array(a.rows);
  for (let i = 0; i < a.rows; i++) {
    let s = 0;
    const ai = i * a.cols;
    for (let j = 0; j < a.cols; j++) s += (a.data[ai + j] as number) * (x[j] as number);
    out[i] = s;
  }
  return out;
}

/** xᵀ y. */
export function dot(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] as number) * (y[i] as number);
  return s;
}

/** Largest absolute entry (0 for an empty matrix). */
export function maxAbs(a: Dense): number {
  let m = 0;
  for (const v of a.data) m = Math.max(m, Math.abs(v));
  return m;
}

/**
 * Checks that `a` is square and symmetric to `tolerance` relative to its
 * largest entry, and returns its exactly symmetric part ½(A + Aᵀ).
 */
export function symmetrize(a: Dense, context: string, name: string, tolerance = 1e-8): Dense {
  if (a.rows !== a.cols)
    throw new Error(`${context}: ${name} must be square, got [${a.rows}, ${a.cols}]`);
  const n = a.rows;
  const scale = maxAbs(a);
  const out = zeros(n, n);
  for (let i = 0; i < n; i++) {
    out.data[i * n + i] = a.data[i * n + i] as number;
    for (let j = i + 1; j < n; j++) {
      const x = a.data[i * n + j] as number;
      const y = a.data[j * n + i] as number;
      if (Math.abs(x - y) > tolerance * scale)
        throw new Error(
          `${context}: ${name} is not symmetric: ${name}[${i}][${j}] = ${x} but ${name}[${j}][${i}] = ${y}`,
        );
      const m = 0.5 * (x + y);
      out.data[i * n + j] = m;
      out.data[j * n + i] = m;
    }
  }
  return out;
}

/** Raised when a covariance that must be positive semi-definite has a clearly negative eigenvalue. */
export class NotPositiveSemidefiniteError extends Error {
  constructor(
    readonly context: string,
    readonly matrixName: string,
    /** The most negative eigenvalue found (or the failing Cholesky pivot). */
    readonly value: number,
    readonly scale: number,
  ) {
    super(
      `${context}: ${matrixName} is not positive semi-definite: it has an eigenvalue ${value} ` +
        `(largest eigenvalue magnitude ${scale}); a covariance matrix cannot have negative eigenvalues`,
    );
    this.name = 'NotPositiveSemidefiniteError';
  }
}

export interface PsdEigen {
  /** Eigenvalues, largest first; rounding-level negatives are set to 0. */
  values: Float64Array;
  /** Eigenvectors as columns, row-major n×n (column k belongs to `values[k]`). */
  vectors: Float64Array;
}

/**
 * Eigendecomposition of a covariance matrix: checks symmetry, runs the
 * Jacobi eigensolver, and throws {@link NotPositiveSemidefiniteError} when an
 * eigenvalue is below −`tolerance`·(largest |eigenvalue|). Smaller negatives
 * are rounding and are clamped to 0.
 */
export function psdEigen(a: Dense, context: string, name: string, tolerance = 1e-9): PsdEigen {
  const sym = symmetrize(a, context, name);
  const n = sym.rows;
  const { values, vectors } = symmetricEigen(sym.data, n);
  let scale = 0;
  for (const v of values) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < n; i++) {
    const v = values[i] as number;
    if (v < 0) {
      if (v < -tolerance * scale) throw new NotPositiveSemidefiniteError(context, name, v, scale);
      values[i] = 0;
    }
  }
  return { values, vectors };
}

/**
 * A cheap positive semi-definiteness check without an eigendecomposition:
 * Cholesky of A + δI with δ = `relativeJitter`·max|A_ii|. Every PSD matrix
 * passes; a matrix with an eigenvalue below −δ fails, and the error names it.
 */
export function assertPositiveSemidefinite(
  a: Dense,
  context: string,
  name: string,
  relativeJitter = 1e-9,
): void {
  const sym = symmetrize(a, context, name);
  const n = sym.rows;
  let diagMax = 0;
  for (let i = 0; i < n; i++) diagMax = Math.max(diagMax, Math.abs(sym.data[i * n + i] as number));
  if (diagMax === 0) {
    if (maxAbs(sym) > 0) throw new NotPositiveSemidefiniteError(context, name, -maxAbs(sym), 0);
    return;
  }
  const delta = relativeJitter * diagMax;
  for (let i = 0; i < n; i++) sym.data[i * n + i] = (sym.data[i * n + i] as number) + delta;
  try {
    choleskyFactor(sym.data, n, context);
  } catch (err) {
    if (err instanceof NotPositiveDefiniteError)
      throw new NotPositiveSemidefiniteError(context, name, err.value - delta, diagMax);
    throw err;
  }
}

/**
 * Solves A X = B for symmetric positive definite A (n×n) and B (n×k) by
 * Cholesky; throws naming `context` when A is not positive definite.
 */
export function solveSpd(a: Dense, b: Dense, context = 'solveSpd'): Dense {
  if (a.rows !== a.cols)
    throw new Error(`${context}: A must be square, got [${a.rows}, ${a.cols}]`);
  if (b.rows !== a.rows)
    throw new Error(
      `${context}: A is [${a.rows}, ${a.cols}] but B is [${b.rows}, ${b.cols}] (B needs ${a.rows} rows)`,
    );
  const l = choleskyFactor(a.data, a.rows, context);
  return { rows: b.rows, cols: b.cols, data: choleskySolveFactored(l, a.rows, b.data, b.cols) };
}
