import { checkSameLength, type MatrixLike, targetClasses, toDense, toLabels } from './matrix.js';

export interface LeepOptions {
  /** Number of target classes; default: largest label + 1. Every class needs a sample. */
  numClasses?: number;
  /** Allowed |Σ_z θ_z(x) − 1| per row; default 1e-4 (float32 softmax outputs pass). */
  sumTol?: number;
}

/**
 * LEEP, the Log Expected Empirical Prediction (Nguyen, Hassner, Seeger,
 * Archambeau 2020, "LEEP: A New Measure to Evaluate Transferability of
 * Learned Representations", ICML, arXiv 2002.12462).
 *
 * Inputs: the source model's softmax outputs θ(x_i) ∈ Δ^{|Z|} on the n target
 * samples (`probs`, [n, |Z|]) and the target labels y_i ∈ {0..C−1}.
 *
 *   P̂(y, z) = (1/n) Σ_i θ_z(x_i) 1[y_i = y]          empirical joint
 *   P̂(z)    = Σ_y P̂(y, z),   P̂(y | z) = P̂(y, z) / P̂(z)
 *   LEEP    = (1/n) Σ_i log Σ_z P̂(y_i | z) θ_z(x_i)
 *
 * LEEP ≤ 0 (each inner sum is a probability); higher means more transferable.
 * A source class with P̂(z) = 0 has θ_z(x_i) = 0 for every i and contributes
 * nothing (its P̂(y | z) is taken as 0).
 *
 * Errors: `probs` rows that are not probability vectors (negative entries or
 * a sum off 1 by more than `sumTol` — pass softmax outputs, not logits),
 * mismatched lengths, non-finite values, an empty target class.
 */
export function leep(
  probs: MatrixLike,
  labels: ArrayLike<number>,
  options: LeepOptions = {},
): number {
  const fn = 'leep';
  const theta = toDense(fn, 'probs', probs);
  const y = toLabels(fn, 'labels', labels);
  checkSameLength(fn, 'probs', theta.rows, 'labels', y.length);
  const { numClasses: c } = targetClasses(fn, y, options.numClasses);
  const n = theta.rows;
  const z = theta.cols;
  const sumTol = options.sumTol ?? 1e-4;
  const t = theta.data;

  // Joint P̂(y, z), stored [c][z].
  const joint = new Float64Array(c * z);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    const yi = y[i] as number;
    for (let k = 0; k < z; k++) {
      const p = t[i * z + k] as number;
      if (p < 0) throw new Error(`${fn}: probs[${i}][${k}] is ${p}; probabilities must be >= 0`);
      sum += p;
      joint[yi * z + k] = (joint[yi * z + k] as number) + p / n;
    }
    if (Math.abs(sum - 1) > sumTol)
      throw new Error(
        `${fn}: probs[${i}] sums to ${sum}, not 1 (pass softmax outputs, not logits)`,
      );
  }
  // Conditional P̂(y | z), in place.
  for (let k = 0; k < z; k++) {
    let pz = 0;
    for (let cl = 0; cl < c; cl++) pz += joint[cl * z + k] as number;
    for (let cl = 0; cl < c; cl++)
      joint[cl * z + k] = pz > 0 ? (joint[cl * z + k] as number) / pz : 0;
  }
  let total = 0;
  for (let i = 0; i < n; i++) {
    const yi = y[i] as number;
    let eep = 0;
    for (let k = 0; k < z; k++) eep += (joint[yi * z + k] as number) * (t[i * z + k] as number);
    total += Math.log(eep);
  }
  return total / n;
}
