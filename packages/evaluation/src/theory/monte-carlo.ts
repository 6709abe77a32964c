/**
 * Finite-size estimators whose high-dimensional limits the theory predicts:
 * ridge / min-norm least squares and ridge-penalised logistic regression, in
 * float64 on plain row-major matrices. They exist so that analytic curves can
 * be checked against (and benchmarks can report) measured values.
 */
import type { Dense } from '../linalg/dense.js';
import { matmul, matmulTransposeA, matvec, solveSpd, transpose } from '../linalg/dense.js';
import { logisticLoss, sigmoid } from './special.js';

function gramRows(x: Dense): Dense {
  // X Xᵀ (n×n)
  return matmul(x, transpose(x), 'gramRows');
}

/**
 * argmin_w ‖y − Xw‖² + λ‖w‖² for X (n×p). λ = 0 gives least squares when
 * n ≥ p and the minimum-norm interpolator Xᵀ(XXᵀ)⁻¹y when n < p (both need X
 * of full rank). Uses the p×p normal equations when p ≤ n and the n×n dual
 * form w = Xᵀ(XXᵀ + λI)⁻¹y otherwise.
 */
export function ridgeSolve(x: Dense, y: ArrayLike<number>, lambda: number): Float64Array {
  const fn = 'ridgeSolve';
  if (y.length !== x.rows)
    throw new Error(`${fn}: X has ${x.rows} rows but y has ${y.length} entries`);
  if (!(lambda >= 0)) throw new Error(`${fn}: lambda must be ≥ 0, got ${lambda}`);
  const { rows: n, cols: p } = x;
  if (p <= n) {
    const a = matmulTransposeA(x, x, fn);
    for (let i = 0; i < p; i++) a.data[i * p + i] = (a.data[i * p + i] as number) + lambda;
    const b = matmulTransposeA(x, { rows: n, cols: 1, data: Float64Array.from(y) }, fn);
    return solveSpd(a, b, fn).data;
  }
  const g = gramRows(x);
  for (let i = 0; i < n; i++) g.data[i * n + i] = (g.data[i * n + i] as number) + lambda;
  const alpha = solveSpd(g, { rows: n, cols: 1, data: Float64Array.from(y) }, fn).data;
  return matmulTransposeA(x, { rows: n, cols: 1, data: alpha }, fn).data;
}

export interface LogisticFit {
  weights: Float64Array;
  /** Mean logistic loss over the training set (without the penalty). */
  trainLoss: number;
  iterations: number;
}

/**
 * argmin_w Σ_μ log(1 + e^{−y_μ·s·wᵀx_μ}) + (λ/2)‖w‖² for labels y ∈ {±1} and
 * an input scale s (1/√p in the GCM convention), by Newton's method with
 * backtracking (the objective is strictly convex for λ > 0).
 */
export function logisticRidgeFit(
  x: Dense,
  y: ArrayLike<number>,
  lambda: number,
  scale = 1,
  options: { tolerance?: number; maxIterations?: number } = {},
): LogisticFit {
  const fn = 'logisticRidgeFit';
  const { rows: n, cols: p } = x;
  if (y.length !== n) throw new Error(`${fn}: X has ${n} rows but y has ${y.length} labels`);
  if (!(lambda > 0)) throw new Error(`${fn}: lambda must be positive, got ${lambda}`);
  for (let i = 0; i < n; i++)
    if (y[i] !== 1 && y[i] !== -1) throw new Error(`${fn}: y[${i}] = ${y[i]}; labels must be ±1`);
  const tolerance = options.tolerance ?? 1e-10;
  const maxIterations = options.maxIterations ?? 100;
  let w = new Float64Array(p);
  const objective = (wv: Float64Array): number => {
    const h = matvec(x, wv);
    let s = 0;
    for (let i = 0; i < n; i++) s += logisticLoss((y[i] as number) * scale * (h[i] as number));
    let r = 0;
    for (const v of wv) r += v * v;
    return s + 0.5 * lambda * r;
  };
  let f = objective(w);
  let iterations = 0;
  for (; iterations < maxIterations; iterations++) {
    const h = matvec(x, w);
    const grad = new Float64Array(p);
    const hw = new Float64Array(n);
    const coef = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const yi = y[i] as number;
      const t = yi * scale * (h[i] as number);
      const sm = sigmoid(-t);
      coef[i] = -yi * scale * sm;
      hw[i] = scale * scale * sm * (1 - sm);
    }
    for (let i = 0; i < n; i++) {
      const c = coef[i] as number;
      const ri = i * p;
      for (let j = 0; j < p; j++) grad[j] = (grad[j] as number) + c * (x.data[ri + j] as number);
    }
    let gnorm = 0;
    for (let j = 0; j < p; j++) {
      grad[j] = (grad[j] as number) + lambda * (w[j] as number);
      gnorm = Math.max(gnorm, Math.abs(grad[j] as number));
    }
    if (gnorm < tolerance) break;
    // Hessian Xᵀ diag(hw) X + λI
    const hess = new Float64Array(p * p);
    for (let i = 0; i < n; i++) {
      const c = hw[i] as number;
      const ri = i * p;
      for (let a = 0; a < p; a++) {
        const xa = c * (x.data[ri + a] as number);
        if (xa === 0) continue;
        const ra = a * p;
        for (let b = a; b < p; b++)
          hess[ra + b] = (hess[ra + b] as number) + xa * (x.data[ri + b] as number);
      }
    }
    for (let a = 0; a < p; a++) {
      hess[a * p + a] = (hess[a * p + a] as number) + lambda;
      for (let b = 0; b < a; b++) hess[a * p + b] = hess[b * p + a] as number;
    }
    const step = solveSpd(
      { rows: p, cols: p, data: hess },
      { rows: p, cols: 1, data: grad },
      fn,
    ).data;
    let t = 1;
    let next = w;
    let fNext = f;
    for (let ls = 0; ls < 50; ls++) {
      next = new Float64Array(p);
      for (let j = 0; j < p; j++) next[j] = (w[j] as number) - t * (step[j] as number);
      fNext = objective(next);
      if (fNext <= f) break;
      t *= 0.5;
    }
    const decrease = f - fNext;
    w = next;
    f = fNext;
    if (decrease <= 1e-15 * Math.max(1, Math.abs(f))) {
      iterations++;
      break;
    }
  }
  const h = matvec(x, w);
  let loss = 0;
  for (let i = 0; i < n; i++) loss += logisticLoss((y[i] as number) * scale * (h[i] as number));
  return { weights: w, trainLoss: loss / n, iterations };
}
