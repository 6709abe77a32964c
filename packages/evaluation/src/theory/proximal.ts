/**
 * Proximal operators of convex losses, solved so that they cannot return an
 * unconverged point.
 *
 * prox(ω, V) = argmin_x (x − ω)²/(2V) + ℓ(x) is the root of the increasing
 * function h(x) = x − ω + V ℓ'(x) (h' = 1 + V ℓ'' ≥ 1). Newton's method alone
 * can oscillate between the two ends of a bracket without ever leaving it
 * (for the logistic loss once V ≳ 20: the tangent at a point where σ has
 * saturated overshoots to the other saturated side and back), so a solve
 * that only bisects on steps leaving the bracket need not converge. Here the
 * bracket must halve at least every second step: whenever a Newton step
 * fails to halve it, the next point is the midpoint. That bounds the work by
 * ~2·log₂(width/resolution) evaluations whatever h looks like, and keeps
 * Newton's quadratic convergence when it works.
 */
import { sigmoid } from './special.js';

/** A proximal (or any monotone root) solve that failed; carries its inputs. */
export class ProximalError extends Error {
  constructor(
    message: string,
    readonly inputs: Readonly<Record<string, number>>,
  ) {
    super(message);
    this.name = 'ProximalError';
  }
}

export interface MonotoneRootOptions {
  /** Evaluation limit before raising; default 400: at least 200 halvings of the bracket, far more than a float64 root needs (≲ 120). */
  maxEvaluations?: number;
  /** Name and inputs reported when the solve fails. */
  context?: string;
  inputs?: Readonly<Record<string, number>>;
}

/**
 * The root of a non-decreasing function h on [lo, hi] with h(lo) ≤ 0 ≤ h(hi),
 * by Newton steps safeguarded with bisection. `evaluate(x)` returns h(x) and
 * h'(x) (h' > 0 where Newton is used; a non-positive or non-finite slope
 * falls back to bisection). Returns x with either |h(x)| ≤ `hTolerance`
 * or a bracket no wider than a few ulps around x; raises
 * {@link ProximalError} with the inputs otherwise, never a silent unconverged point.
 */
export function monotoneRoot(
  evaluate: (x: number) => { h: number; dh: number },
  lo: number,
  hi: number,
  x0: number,
  hTolerance: number,
  options: MonotoneRootOptions = {},
): number {
  const context = options.context ?? 'monotoneRoot';
  const inputs = options.inputs ?? {};
  const fail = (why: string, extra: Record<string, number>): never => {
    throw new ProximalError(
      `${context}: ${why} (${Object.entries({ ...inputs, ...extra })
        .map(([k, v]) => `${k} = ${v}`)
        .join(', ')})`,
      { ...inputs, ...extra },
    );
  };
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo <= hi))
    fail('no finite bracket', { lo, hi });
  const maxEvaluations = options.maxEvaluations ?? 400;
  let x = x0 > lo && x0 < hi ? x0 : 0.5 * (lo + hi);
  // Width before the last step: a step that does not halve it triggers bisection.
  let widthBefore = Number.POSITIVE_INFINITY;
  for (let evals = 0; evals < maxEvaluations; evals++) {
    const { h, dh } = evaluate(x);
    if (Number.isNaN(h)) fail('the function is NaN', { x });
    if (Math.abs(h) <= hTolerance) return x;
    if (h > 0) hi = x;
    else lo = x;
    const width = hi - lo;
    // Resolution: the bracket cannot shrink below the spacing of floats near x.
    if (width <= 4 * Number.EPSILON * Math.max(1, Math.abs(lo), Math.abs(hi)))
      return h > 0 ? lo : hi;
    const halved = width <= 0.5 * widthBefore;
    widthBefore = width;
    let next = halved && dh > 0 && Number.isFinite(dh) ? x - h / dh : Number.NaN;
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    x = next;
  }
  return fail(`no root to tolerance ${hTolerance} after ${maxEvaluations} evaluations`, {
    lo,
    hi,
    x,
  });
}

/**
 * The proximal operator of the logistic loss: argmin_x (x − ω)²/(2V) +
 * log(1 + e^{−yx}) for y = ±1, V > 0. It is the root of
 * h(x) = x − ω − V y σ(−yx), bracketed by [ω, ω + V] (y = +1) or [ω − V, ω]
 * (y = −1). Accurate to |x − x*| ≤ |h(x)| ≤ ~1e-13·(1 + |ω| + V) (h' ≥ 1), or
 * to the float spacing; raises {@link ProximalError} otherwise.
 */
export function logisticProximal(y: number, omega: number, V: number): number {
  const inputs = { y, omega, V };
  if (y !== 1 && y !== -1)
    throw new ProximalError(`logisticProximal: y must be ±1, got ${y}`, inputs);
  if (!(V > 0 && Number.isFinite(V)))
    throw new ProximalError(`logisticProximal: V must be positive and finite, got ${V}`, inputs);
  if (!Number.isFinite(omega))
    throw new ProximalError(`logisticProximal: omega must be finite, got ${omega}`, inputs);
  const lo = y > 0 ? omega : omega - V;
  const hi = y > 0 ? omega + V : omega;
  // h's own rounding is ~ulp(|x| + |ω| + V); ask for a few times that.
  const tolerance = 1e-13 * (1 + Math.abs(omega) + V);
  return monotoneRoot(
    (x) => {
      const s = sigmoid(-y * x);
      return { h: x - omega - V * y * s, dh: 1 + V * s * (1 - s) };
    },
    lo,
    hi,
    omega + 0.5 * V * y * sigmoid(-y * omega),
    tolerance,
    { context: 'logisticProximal', inputs },
  );
}
