import type { MatrixLike } from '../estimators/matrix.js';
import { expandPlan, planCost, transportProblem } from './problem.js';

export interface SinkhornOptions {
  /** Maximum number of (f, g) update pairs; default 10000. */
  maxIter?: number;
  /**
   * Stop when the row marginals of the plan are within `tol` of a in L1,
   * relative to the total mass (the column marginals are exact after each
   * g-update); default 1e-9.
   */
  tol?: number;
  /** Allowed |Σa − Σb| relative to the larger mass; default 1e-7. */
  massTol?: number;
}

export interface SinkhornResult {
  /** ⟨P, M⟩ of the entropic plan (without the entropy term). */
  cost: number;
  /** P_ij = exp((f_i + g_j − M_ij)/ε), n rows of length m. */
  plan: Float64Array[];
  /** Dual potentials (−∞ on zero-mass rows/columns). */
  f: Float64Array;
  g: Float64Array;
  /** (f, g) update pairs done. */
  iterations: number;
  converged: boolean;
  /** ‖P1 − a‖₁ / Σa at the end. */
  marginalError: number;
}

function logSumExp(values: Float64Array, len: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < len; k++) if ((values[k] as number) > max) max = values[k] as number;
  if (max === Number.NEGATIVE_INFINITY) return max;
  let s = 0;
  for (let k = 0; k < len; k++) s += Math.exp((values[k] as number) - max);
  return max + Math.log(s);
}

/**
 * Entropic optimal transport by Sinkhorn's iterations in the log domain
 * (Cuturi 2013; log-domain form as in Peyré & Cuturi, Computational Optimal
 * Transport, §4.4): the coupling minimising ⟨P, M⟩ − ε H(P),
 * H(P) = −Σ P_ij (log P_ij − 1), over P ≥ 0 with P1 = a, Pᵀ1 = b, is
 * P_ij = exp((f_i + g_j − M_ij)/ε), with the potentials updated alternately
 *
 *   f_i ← ε log a_i − ε log Σ_j exp((g_j − M_ij)/ε)
 *   g_j ← ε log b_j − ε log Σ_i exp((f_i − M_ij)/ε)
 *
 * every log-sum-exp taken around its maximum, so it neither underflows nor
 * overflows for small ε (the kernel exp(−M/ε) is never formed). Rows and
 * columns with zero mass get f = −∞ / g = −∞ and zero plan entries.
 *
 * As ε → 0 the cost tends to the exact OT cost from above:
 * 0 ≤ ⟨P_ε, M⟩ − OT(a, b) ≤ ε·min(H(a), H(b)) (for normalised a, b; the
 * bound follows from H(P_ε) ≤ H(a) + H(b) and H(P*) ≥ max(H(a), H(b))).
 * Iterations needed grow roughly like max|M|/ε.
 */
export function sinkhorn(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  M: MatrixLike,
  eps: number,
  options: SinkhornOptions = {},
): SinkhornResult {
  const fn = 'sinkhorn';
  if (!(eps > 0) || !Number.isFinite(eps))
    throw new Error(`${fn}: eps must be a finite number > 0, got ${eps}`);
  const maxIter = options.maxIter ?? 10_000;
  const tol = options.tol ?? 1e-9;
  if (!Number.isInteger(maxIter) || maxIter < 1)
    throw new Error(`${fn}: maxIter must be a positive integer, got ${maxIter}`);
  const p = transportProblem(fn, a, b, M, options.massTol ?? 1e-7);
  const n = p.rows.length;
  const m = p.cols.length;
  // Cost on the support, scaled by 1/ε, row-major and transposed.
  const c = new Float64Array(n * m);
  const ct = new Float64Array(n * m);
  for (let r = 0; r < n; r++)
    for (let k = 0; k < m; k++) {
      const v = (p.cost[(p.rows[r] as number) * p.m + (p.cols[k] as number)] as number) / eps;
      c[r * m + k] = v;
      ct[k * n + r] = v;
    }
  const logA = new Float64Array(n);
  const logB = new Float64Array(m);
  for (let r = 0; r < n; r++) logA[r] = Math.log(p.a[p.rows[r] as number] as number);
  for (let k = 0; k < m; k++) logB[k] = Math.log(p.b[p.cols[k] as number] as number);
  // Potentials divided by ε.
  const fe = new Float64Array(n);
  const ge = new Float64Array(m);
  const rowLse = new Float64Array(n);
  const buf = new Float64Array(Math.max(n, m));

  const computeRowLse = (): void => {
    for (let r = 0; r < n; r++) {
      for (let k = 0; k < m; k++) buf[k] = (ge[k] as number) - (c[r * m + k] as number);
      rowLse[r] = logSumExp(buf, m);
    }
  };
  const rowError = (): number => {
    let err = 0;
    for (let r = 0; r < n; r++)
      err += Math.abs(
        Math.exp((fe[r] as number) + (rowLse[r] as number)) - Math.exp(logA[r] as number),
      );
    return err / p.mass;
  };

  let iterations = 0;
  let converged = false;
  let marginalError = Number.POSITIVE_INFINITY;
  for (;;) {
    computeRowLse();
    if (iterations > 0) {
      marginalError = rowError();
      if (marginalError <= tol) {
        converged = true;
        break;
      }
      if (iterations >= maxIter) break;
    }
    for (let r = 0; r < n; r++) fe[r] = (logA[r] as number) - (rowLse[r] as number);
    for (let k = 0; k < m; k++) {
      for (let r = 0; r < n; r++) buf[r] = (fe[r] as number) - (ct[k * n + r] as number);
      ge[k] = (logB[k] as number) - logSumExp(buf, n);
    }
    iterations++;
  }

  const flat = new Float64Array(n * m);
  for (let r = 0; r < n; r++)
    for (let k = 0; k < m; k++)
      flat[r * m + k] = Math.exp((fe[r] as number) + (ge[k] as number) - (c[r * m + k] as number));
  const plan = expandPlan(p, flat);
  const f = new Float64Array(p.n).fill(Number.NEGATIVE_INFINITY);
  const g = new Float64Array(p.m).fill(Number.NEGATIVE_INFINITY);
  for (let r = 0; r < n; r++) f[p.rows[r] as number] = (fe[r] as number) * eps;
  for (let k = 0; k < m; k++) g[p.cols[k] as number] = (ge[k] as number) * eps;
  return { cost: planCost(p, plan), plan, f, g, iterations, converged, marginalError };
}
