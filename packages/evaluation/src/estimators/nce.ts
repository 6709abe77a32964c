import { checkSameLength, targetClasses, toLabels } from './matrix.js';

export interface NceOptions {
  /** Number of target classes; default: largest target label + 1. Every class needs a sample. */
  numClasses?: number;
}

/**
 * NCE, Negative Conditional Entropy (Tran, Nguyen, Hassner 2019,
 * "Transferability and Hardness of Supervised Classification Tasks", ICCV,
 * arXiv 1908.08142).
 *
 * Inputs: hard source labels z_i (for a source model: the arg-max of its
 * outputs on target sample i) and target labels y_i, both integers >= 0.
 *
 *   P̂(y, z) = (1/n) #{i : y_i = y, z_i = z},   P̂(z) = Σ_y P̂(y, z)
 *   NCE     = −H(Y | Z) = Σ_{y,z} P̂(y, z) log( P̂(y, z) / P̂(z) )
 *
 * NCE ≤ 0, with equality exactly when y is a function of z. Source classes
 * that never occur are fine (they carry no mass); every target class
 * 0..numClasses−1 must occur.
 */
export function nce(
  sourceLabels: ArrayLike<number>,
  targetLabels: ArrayLike<number>,
  options: NceOptions = {},
): number {
  const fn = 'nce';
  const z = toLabels(fn, 'sourceLabels', sourceLabels);
  const y = toLabels(fn, 'targetLabels', targetLabels);
  checkSameLength(fn, 'sourceLabels', z.length, 'targetLabels', y.length, 'entries', 'entries');
  const { numClasses: c } = targetClasses(fn, y, options.numClasses);
  const n = y.length;
  // Source labels can be sparse (e.g. 1000 ImageNet classes): count with a map.
  const joint = new Map<number, number>();
  const marginal = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const zi = z[i] as number;
    const key = zi * c + (y[i] as number);
    joint.set(key, (joint.get(key) ?? 0) + 1);
    marginal.set(zi, (marginal.get(zi) ?? 0) + 1);
  }
  let sum = 0;
  for (const [key, count] of joint) {
    const zi = Math.floor(key / c);
    const nz = marginal.get(zi) as number;
    sum += (count / n) * Math.log(count / nz);
  }
  // −0 → 0 for a deterministic relation.
  return sum === 0 ? 0 : sum;
}
