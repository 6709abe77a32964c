import {
  checkSameLength,
  type Dense,
  type MatrixLike,
  toDense,
  toLabels,
  toVector,
} from '../estimators/matrix.js';
import { type EmdOptions, emd } from './emd.js';

function euclidean(fn: string, x: Dense, y: Dense): Float64Array[] {
  if (x.cols !== y.cols)
    throw new Error(`${fn}: X has dimension ${x.cols} but Y has dimension ${y.cols}`);
  const d = x.cols;
  const out: Float64Array[] = [];
  for (let i = 0; i < x.rows; i++) {
    const row = new Float64Array(y.rows);
    for (let j = 0; j < y.rows; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) {
        const diff = (x.data[i * d + k] as number) - (y.data[j * d + k] as number);
        s += diff * diff;
      }
      row[j] = Math.sqrt(s);
    }
    out.push(row);
  }
  return out;
}

/**
 * Pairwise Euclidean distances ‖x_i − y_j‖ between the rows of X [n, d] and
 * Y [m, d], computed from the differences (no ‖x‖² + ‖y‖² − 2xᵀy
 * cancellation).
 */
export function euclideanCost(X: MatrixLike, Y: MatrixLike): Float64Array[] {
  const fn = 'euclideanCost';
  return euclidean(fn, toDense(fn, 'X', X), toDense(fn, 'Y', Y));
}

function weights(
  fn: string,
  name: string,
  w: ArrayLike<number> | undefined,
  n: number,
): Float64Array {
  if (w === undefined) return new Float64Array(n).fill(1 / n);
  const v = toVector(fn, name, w);
  checkSameLength(fn, name, v.length, 'the point cloud', n, 'entries', 'points');
  let s = 0;
  v.forEach((x, i) => {
    if (x < 0) throw new Error(`${fn}: ${name}[${i}] is ${x}; weights must be >= 0`);
    s += x;
  });
  if (!(s > 0)) throw new Error(`${fn}: ${name} has zero total weight`);
  return v.map((x) => x / s);
}

/**
 * The Wasserstein-1 distance between the weighted point clouds X [n, d] and
 * Y [m, d] with Euclidean ground cost:
 *
 *   W1 = min_P Σ_ij P_ij ‖x_i − y_j‖   over couplings of wx and wy,
 *
 * solved exactly with {@link emd}. Weights default to uniform (1/n, 1/m) and
 * are normalised to sum to 1.
 */
export function wasserstein1(
  X: MatrixLike,
  Y: MatrixLike,
  wx?: ArrayLike<number>,
  wy?: ArrayLike<number>,
  options: EmdOptions = {},
): number {
  const fn = 'wasserstein1';
  const x = toDense(fn, 'X', X);
  const y = toDense(fn, 'Y', Y);
  const M = euclidean(fn, x, y);
  return emd(weights(fn, 'wx', wx, x.rows), weights(fn, 'wy', wy, y.rows), M, options).cost;
}

export interface ClasswiseWasserstein {
  /** Mean of the per-class W1 over the classes (each class counts once). */
  distance: number;
  perClass: { label: number; distance: number; nSource: number; nTarget: number }[];
}

/**
 * Class-wise Wasserstein distance: for every label c, the W1 distance
 * (Euclidean cost, uniform weights within the class) between the source
 * points with label c and the target points with label c, averaged uniformly
 * over the labels:
 *
 *   W = (1/|C|) Σ_c W1( {x_s : y_s = c}, {x_t : y_t = c} )
 *
 * This is the W term of the Task Transfer Analysis bound (Mehra, Zhang, Hamm
 * 2023, arXiv 2307.00823), where Xs are the transformed source features
 * (A z + b, labels mapped by B) and Xt the target features; like the
 * authors' code, it averages over classes with equal weight. Any feature
 * scaling (the paper standardises features) is the caller's.
 *
 * Errors: a label present in one set but not the other (named), mismatched
 * lengths or dimensions, non-finite values.
 */
export function classwiseWasserstein(
  Xs: MatrixLike,
  ys: ArrayLike<number>,
  Xt: MatrixLike,
  yt: ArrayLike<number>,
  options: EmdOptions = {},
): ClasswiseWasserstein {
  const fn = 'classwiseWasserstein';
  const xs = toDense(fn, 'Xs', Xs);
  const xt = toDense(fn, 'Xt', Xt);
  const ls = toLabels(fn, 'ys', ys);
  const lt = toLabels(fn, 'yt', yt);
  checkSameLength(fn, 'Xs', xs.rows, 'ys', ls.length);
  checkSameLength(fn, 'Xt', xt.rows, 'yt', lt.length);
  if (xs.cols !== xt.cols)
    throw new Error(`${fn}: Xs has dimension ${xs.cols} but Xt has dimension ${xt.cols}`);
  const groups = (labels: Int32Array): Map<number, number[]> => {
    const g = new Map<number, number[]>();
    labels.forEach((label, i) => {
      const list = g.get(label);
      if (list) list.push(i);
      else g.set(label, [i]);
    });
    return g;
  };
  const gs = groups(ls);
  const gt = groups(lt);
  for (const [label, idx] of gs)
    if (!gt.has(label))
      throw new Error(
        `${fn}: class ${label} has ${idx.length} source samples but no target samples`,
      );
  for (const [label, idx] of gt)
    if (!gs.has(label))
      throw new Error(
        `${fn}: class ${label} has ${idx.length} target samples but no source samples`,
      );
  const d = xs.cols;
  const take = (x: Dense, idx: number[]): Dense => {
    const data = new Float64Array(idx.length * d);
    idx.forEach((i, r) => {
      data.set(x.data.subarray(i * d, (i + 1) * d), r * d);
    });
    return { data, rows: idx.length, cols: d };
  };
  const perClass: ClasswiseWasserstein['perClass'] = [];
  for (const label of [...gs.keys()].sort((p, q) => p - q)) {
    const is = gs.get(label) as number[];
    const it = gt.get(label) as number[];
    const M = euclidean(fn, take(xs, is), take(xt, it));
    const cost = emd(
      new Float64Array(is.length).fill(1 / is.length),
      new Float64Array(it.length).fill(1 / it.length),
      M,
      options,
    ).cost;
    perClass.push({ label, distance: cost, nSource: is.length, nTarget: it.length });
  }
  const distance = perClass.reduce((s, c) => s + c.distance, 0) / perClass.length;
  return { distance, perClass };
}
