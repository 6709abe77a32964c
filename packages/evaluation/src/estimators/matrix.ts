/**
 * Plain-array inputs shared by the estimators and the optimal-transport
 * functions, and their validation. Everything is copied into Float64 before
 * any arithmetic.
 */

/** A row-major matrix stored flat, e.g. `{ data: tensor.dataSync(), rows, cols }`. */
export interface DenseMatrix {
  readonly data: ArrayLike<number>;
  readonly rows: number;
  readonly cols: number;
}

/**
 * A matrix given either as rows (`number[][]`, `Float64Array[]`, `Float32Array[]`, …)
 * or as a flat row-major {@link DenseMatrix}.
 */
export type MatrixLike = ArrayLike<ArrayLike<number>> | DenseMatrix;

/** Internal form: Float64 row-major. */
export interface Dense {
  data: Float64Array;
  rows: number;
  cols: number;
}

function isDense(m: MatrixLike): m is DenseMatrix {
  return typeof m === 'object' && m !== null && 'rows' in m && 'cols' in m && 'data' in m;
}

function describe(x: number): string {
  return Number.isNaN(x) ? 'NaN' : String(x);
}

/**
 * Copies `m` into a Float64 row-major matrix, checking that every row has the
 * same length, that there is at least one row and one column, and that every
 * value is finite. Errors start with `fn: name`.
 */
export function toDense(fn: string, name: string, m: MatrixLike): Dense {
  if (isDense(m)) {
    const { rows, cols, data } = m;
    if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(cols) || cols < 0)
      throw new Error(`${fn}: ${name} has invalid shape [${rows}, ${cols}]`);
    if (data.length !== rows * cols)
      throw new Error(
        `${fn}: ${name} is [${rows}, ${cols}] but its data has ${data.length} values, not ${rows * cols}`,
      );
    if (rows === 0) throw new Error(`${fn}: ${name} has no rows`);
    if (cols === 0) throw new Error(`${fn}: ${name} has dimension 0 (rows of length 0)`);
    const out = new Float64Array(rows * cols);
    for (let k = 0; k < out.length; k++) {
      const v = data[k] as number;
      if (!Number.isFinite(v)) {
        const i = Math.floor(k / cols);
        throw new Error(`${fn}: ${name}[${i}][${k - i * cols}] is ${describe(v)}`);
      }
      out[k] = v;
    }
    return { data: out, rows, cols };
  }
  const rows = m.length;
  if (rows === 0) throw new Error(`${fn}: ${name} has no rows`);
  const first = m[0] as ArrayLike<number> | undefined;
  if (first === undefined || typeof first !== 'object' || typeof first.length !== 'number')
    throw new Error(`${fn}: ${name} must be a matrix (an array of rows or {data, rows, cols})`);
  const cols = first.length;
  if (cols === 0) throw new Error(`${fn}: ${name} has dimension 0 (rows of length 0)`);
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const row = m[i] as ArrayLike<number> | undefined;
    if (row === undefined || typeof row !== 'object' || row.length !== cols)
      throw new Error(
        `${fn}: ${name}[${i}] has length ${row?.length ?? 'undefined'} but ${name}[0] has length ${cols}`,
      );
    for (let j = 0; j < cols; j++) {
      const v = row[j] as number;
      if (!Number.isFinite(v)) throw new Error(`${fn}: ${name}[${i}][${j}] is ${describe(v)}`);
      out[i * cols + j] = v;
    }
  }
  return { data: out, rows, cols };
}

/** Copies a vector into Float64, checking that every value is finite. */
export function toVector(fn: string, name: string, v: ArrayLike<number>): Float64Array {
  const out = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = v[i] as number;
    if (typeof x !== 'number' || !Number.isFinite(x))
      throw new Error(`${fn}: ${name}[${i}] is ${describe(x)}`);
    out[i] = x;
  }
  return out;
}

/** Copies integer labels (>= 0) into an Int32Array. */
export function toLabels(fn: string, name: string, labels: ArrayLike<number>): Int32Array {
  const n = labels.length;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = labels[i] as number;
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff)
      throw new Error(`${fn}: ${name}[${i}] is ${describe(v)}; labels must be integers >= 0`);
    out[i] = v;
  }
  return out;
}

/** Throws unless two lengths agree, naming both. */
export function checkSameLength(
  fn: string,
  nameA: string,
  lengthA: number,
  nameB: string,
  lengthB: number,
  unitA = 'rows',
  unitB = 'entries',
): void {
  if (lengthA !== lengthB)
    throw new Error(`${fn}: ${nameA} has ${lengthA} ${unitA} but ${nameB} has ${lengthB} ${unitB}`);
}

/**
 * Target classes for an estimator: `0..numClasses-1`, where `numClasses`
 * defaults to the largest label + 1. Every class must have at least one sample
 * (an empty class would make the estimator's per-class statistics undefined),
 * otherwise the error names it. Returns the number of classes and the counts.
 */
export function targetClasses(
  fn: string,
  labels: Int32Array,
  numClasses?: number,
): { numClasses: number; counts: Float64Array } {
  if (labels.length === 0) throw new Error(`${fn}: no samples`);
  let max = 0;
  for (const y of labels) if (y > max) max = y;
  const c = numClasses ?? max + 1;
  if (!Number.isInteger(c) || c < 1)
    throw new Error(`${fn}: numClasses must be a positive integer, got ${numClasses}`);
  if (max >= c) throw new Error(`${fn}: label ${max} is out of range for numClasses = ${c}`);
  const counts = new Float64Array(c);
  for (const y of labels) counts[y] = (counts[y] as number) + 1;
  for (let k = 0; k < c; k++)
    if (counts[k] === 0)
      throw new Error(
        `${fn}: target class ${k} has no samples (classes are 0..${c - 1}; relabel to drop it)`,
      );
  return { numClasses: c, counts };
}
