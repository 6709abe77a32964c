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

export interface LogisticCgOptions {
  /** Starting weights (e.g. the solution at a smaller n); default 0. */
  init?: ArrayLike<number>;
  /** Stop when ‖∇‖₂ ≤ tolerance·max(1, ‖∇ at w = 0‖₂); default 1e-8. */
  tolerance?: number;
  /** Newton steps; default 100. */
  maxIterations?: number;
  /** Conjugate-gradient steps per Newton step; default 1000. */
  maxCgSteps?: number;
}

/**
 * The same estimator as {@link logisticRidgeFit} for wide problems (p in the
 * thousands), where forming and factoring the p×p Hessian is too slow:
 * truncated Newton — each direction solves H d = −∇ by conjugate gradients
 * with Hessian-vector products H v = s² Xᵀ diag(σσ') X v + λv (two passes
 * over X, no p×p matrix), to a relative residual min(0.5, √‖∇‖), then
 * backtracking on the objective. X is n×p row-major in `data` (Float32Array
 * or Float64Array; sums in float64).
 */
export function logisticRidgeFitCg(
  x: { data: ArrayLike<number>; rows: number; cols: number },
  y: ArrayLike<number>,
  lambda: number,
  scale = 1,
  options: LogisticCgOptions = {},
): LogisticFit {
  const fn = 'logisticRidgeFitCg';
  const { rows: n, cols: p, data } = x;
  if (data.length < n * p)
    throw new Error(`${fn}: X has ${data.length} values, expected ${n}×${p}`);
  if (y.length !== n) throw new Error(`${fn}: X has ${n} rows but y has ${y.length} labels`);
  if (!(lambda > 0)) throw new Error(`${fn}: lambda must be positive, got ${lambda}`);
  for (let i = 0; i < n; i++)
    if (y[i] !== 1 && y[i] !== -1) throw new Error(`${fn}: y[${i}] = ${y[i]}; labels must be ±1`);
  const tolerance = options.tolerance ?? 1e-8;
  const maxIterations = options.maxIterations ?? 100;
  const maxCg = options.maxCgSteps ?? 1000;
  const w = new Float64Array(p);
  if (options.init) {
    if (options.init.length !== p)
      throw new Error(`${fn}: init has ${options.init.length} entries, expected ${p}`);
    for (let j = 0; j < p; j++) w[j] = options.init[j] as number;
  }
  const field = new Float64Array(n);
  const mul = (v: Float64Array, out: Float64Array) => {
    for (let i = 0; i < n; i++) {
      let s = 0;
      const r = i * p;
      for (let j = 0; j < p; j++) s += (data[r + j] as number) * (v[j] as number);
      out[i] = s;
    }
  };
  const mulT = (r: Float64Array, out: Float64Array) => {
    out.fill(0);
    for (let i = 0; i < n; i++) {
      const c = r[i] as number;
      if (c === 0) continue;
      const b = i * p;
      for (let j = 0; j < p; j++) out[j] = (out[j] as number) + c * (data[b + j] as number);
    }
  };
  const objectiveAt = (h: Float64Array, wv: Float64Array) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += logisticLoss((y[i] as number) * scale * (h[i] as number));
    let r = 0;
    for (let j = 0; j < p; j++) r += (wv[j] as number) ** 2;
    return s + 0.5 * lambda * r;
  };
  const grad = new Float64Array(p);
  const coef = new Float64Array(n);
  const curv = new Float64Array(n);
  const dir = new Float64Array(p);
  const res = new Float64Array(p);
  const conj = new Float64Array(p);
  const hv = new Float64Array(p);
  const tmpN = new Float64Array(n);
  const trial = new Float64Array(p);
  const trialField = new Float64Array(n);
  mul(w, field);
  let f = objectiveAt(field, w);
  let g0: number | undefined;
  let iterations = 0;
  for (; iterations < maxIterations; iterations++) {
    for (let i = 0; i < n; i++) {
      const yi = y[i] as number;
      const sm = sigmoid(-yi * scale * (field[i] as number));
      coef[i] = -yi * scale * sm;
      curv[i] = scale * scale * sm * (1 - sm);
    }
    mulT(coef, grad);
    let gnorm2 = 0;
    for (let j = 0; j < p; j++) {
      grad[j] = (grad[j] as number) + lambda * (w[j] as number);
      gnorm2 += (grad[j] as number) ** 2;
    }
    const gnorm = Math.sqrt(gnorm2);
    if (g0 === undefined) {
      // the scale of "small": the gradient at w = 0 is s·Xᵀy/2
      const zero = new Float64Array(n);
      for (let i = 0; i < n; i++) zero[i] = -0.5 * (y[i] as number) * scale;
      mulT(zero, hv);
      g0 = Math.sqrt(hv.reduce((a, v) => a + v * v, 0));
    }
    if (gnorm <= tolerance * Math.max(1, g0)) break;
    // CG on H d = −g from d = 0.
    dir.fill(0);
    for (let j = 0; j < p; j++) {
      res[j] = -(grad[j] as number);
      conj[j] = res[j] as number;
    }
    let rr = gnorm2;
    const target = Math.min(0.5, Math.sqrt(gnorm)) * gnorm;
    for (let k = 0; k < maxCg && Math.sqrt(rr) > target; k++) {
      mul(conj, tmpN);
      for (let i = 0; i < n; i++) tmpN[i] = (curv[i] as number) * (tmpN[i] as number);
      mulT(tmpN, hv);
      let pHp = 0;
      for (let j = 0; j < p; j++) {
        hv[j] = (hv[j] as number) + lambda * (conj[j] as number);
        pHp += (conj[j] as number) * (hv[j] as number);
      }
      const a = rr / pHp;
      let rrNew = 0;
      for (let j = 0; j < p; j++) {
        dir[j] = (dir[j] as number) + a * (conj[j] as number);
        res[j] = (res[j] as number) - a * (hv[j] as number);
        rrNew += (res[j] as number) ** 2;
      }
      const b = rrNew / rr;
      rr = rrNew;
      for (let j = 0; j < p; j++) conj[j] = (res[j] as number) + b * (conj[j] as number);
    }
    let slope = 0;
    for (let j = 0; j < p; j++) slope += (grad[j] as number) * (dir[j] as number);
    if (!(slope < 0)) for (let j = 0; j < p; j++) dir[j] = -(grad[j] as number);
    mul(dir, tmpN);
    let t = 1;
    let accepted = false;
    for (let ls = 0; ls < 60; ls++) {
      for (let j = 0; j < p; j++) trial[j] = (w[j] as number) + t * (dir[j] as number);
      for (let i = 0; i < n; i++) trialField[i] = (field[i] as number) + t * (tmpN[i] as number);
      const fTrial = objectiveAt(trialField, trial);
      if (fTrial <= f + 1e-4 * t * Math.min(slope, 0)) {
        w.set(trial);
        field.set(trialField);
        f = fTrial;
        accepted = true;
        break;
      }
      t *= 0.5;
    }
    if (!accepted) break; // at the rounding floor of the objective
  }
  let loss = 0;
  for (let i = 0; i < n; i++) loss += logisticLoss((y[i] as number) * scale * (field[i] as number));
  return { weights: w, trainLoss: loss / n, iterations };
}
