import { type MatrixLike, toDense, toVector } from '../estimators/matrix.js';

/** A validated balanced transport problem restricted to the support of a and b. */
export interface TransportProblem {
  n: number;
  m: number;
  /** Original a and b (Float64), b rescaled to the mass of a. */
  a: Float64Array;
  b: Float64Array;
  /** Full cost matrix, row-major n×m. */
  cost: Float64Array;
  /** Indices of the rows / columns with positive mass. */
  rows: Int32Array;
  cols: Int32Array;
  mass: number;
}

/**
 * Checks a, b (non-negative, finite, positive and equal total mass up to
 * `massTol` relative) and M (finite, [a.length, b.length]). When the masses
 * differ by less than the tolerance, b is rescaled to the mass of a so that the
 * problem is exactly balanced.
 */
export function transportProblem(
  fn: string,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  M: MatrixLike,
  massTol: number,
): TransportProblem {
  const av = toVector(fn, 'a', a);
  const bv = toVector(fn, 'b', b);
  if (av.length === 0) throw new Error(`${fn}: a is empty`);
  if (bv.length === 0) throw new Error(`${fn}: b is empty`);
  const cost = toDense(fn, 'M', M);
  if (cost.rows !== av.length || cost.cols !== bv.length)
    throw new Error(
      `${fn}: M is [${cost.rows}, ${cost.cols}] but a has ${av.length} entries and b has ${bv.length}`,
    );
  let sa = 0;
  let sb = 0;
  const rows: number[] = [];
  const cols: number[] = [];
  av.forEach((v, i) => {
    if (v < 0) throw new Error(`${fn}: a[${i}] is ${v}; masses must be >= 0`);
    sa += v;
    if (v > 0) rows.push(i);
  });
  bv.forEach((v, j) => {
    if (v < 0) throw new Error(`${fn}: b[${j}] is ${v}; masses must be >= 0`);
    sb += v;
    if (v > 0) cols.push(j);
  });
  if (!(sa > 0)) throw new Error(`${fn}: a has zero total mass`);
  if (!(sb > 0)) throw new Error(`${fn}: b has zero total mass`);
  if (Math.abs(sa - sb) > massTol * Math.max(sa, sb))
    throw new Error(
      `${fn}: a and b must have equal mass: sum(a) = ${sa} but sum(b) = ${sb} (relative tolerance ${massTol})`,
    );
  if (sa !== sb) for (let j = 0; j < bv.length; j++) bv[j] = ((bv[j] as number) * sa) / sb;
  return {
    n: av.length,
    m: bv.length,
    a: av,
    b: bv,
    cost: cost.data,
    rows: Int32Array.from(rows),
    cols: Int32Array.from(cols),
    mass: sa,
  };
}

/** Expands a flat plan on the support (rows × cols) to full n×m rows. */
export function expandPlan(p: TransportProblem, flat: Float64Array): Float64Array[] {
  const plan = Array.from({ length: p.n }, () => new Float64Array(p.m));
  const nr = p.rows.length;
  const nc = p.cols.length;
  for (let r = 0; r < nr; r++) {
    const row = plan[p.rows[r] as number] as Float64Array;
    for (let c = 0; c < nc; c++) row[p.cols[c] as number] = flat[r * nc + c] as number;
  }
  return plan;
}

/** ⟨P, M⟩. */
export function planCost(p: TransportProblem, plan: Float64Array[]): number {
  let cost = 0;
  for (let i = 0; i < p.n; i++) {
    const row = plan[i] as Float64Array;
    for (let j = 0; j < p.m; j++) {
      const v = row[j] as number;
      if (v !== 0) cost += v * (p.cost[i * p.m + j] as number);
    }
  }
  return cost;
}
