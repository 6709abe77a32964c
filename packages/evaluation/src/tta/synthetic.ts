/**
 * A synthetic source/target pair for Task Transfer Analysis with a known
 * answer: Gaussian class clusters for the source, and a target that is the
 * same distribution rotated, shifted and with its labels permuted,
 *
 *   source: z = μ_j + σ ε,            label j
 *   target: z = R (μ_j + σ ε) + s,    label π(j)
 *
 * so A = R, b = s, B = the permutation matrix of π transform the source into
 * the target exactly (in distribution).
 */
import { createRng, type Rng } from '@transferlab/core';
import type { DenseMatrix } from '../estimators/matrix.js';

export interface RotatedGaussianPairOptions {
  /** Feature dimension. Default 3. */
  dim?: number;
  /** Classes (the same number in both tasks). Default 4. */
  numClasses?: number;
  /** Samples per class in each train split. Default 30. */
  trainPerClass?: number;
  /** Samples per class in each test split. Default 30. */
  testPerClass?: number;
  /** Class means μ_j ~ separation · N(0, I). Default 2. */
  separation?: number;
  /** Within-class standard deviation σ. Default 0.5. */
  noise?: number;
  /** Rotation angle in the plane of the first two coordinates; default: a uniformly random rotation. */
  angle?: number;
  /** Shift s ~ shift · N(0, I). Default 1. */
  shift?: number;
  /** π: source class j → target class permutation[j]; default a random permutation. */
  permutation?: ArrayLike<number>;
  seed?: number;
}

interface Split {
  features: DenseMatrix & { data: Float64Array };
  labels: Int32Array;
}

export interface RotatedGaussianPair {
  source: { train: Split; test: Split; numClasses: number };
  target: { train: Split; test: Split; numClasses: number };
  /** R as rows [d, d]. */
  rotation: Float64Array[];
  shift: Float64Array;
  permutation: Int32Array;
  means: Float64Array[];
}

/** A uniformly random rotation (Gram–Schmidt on a Gaussian matrix, det = +1). */
function randomRotation(rng: Rng, d: number): Float64Array[] {
  const q: Float64Array[] = [];
  while (q.length < d) {
    const v = Float64Array.from({ length: d }, () => rng.normal());
    for (const u of q) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += (u[k] as number) * (v[k] as number);
      for (let k = 0; k < d; k++) v[k] = (v[k] as number) - dot * (u[k] as number);
    }
    const n = Math.hypot(...v);
    if (n < 1e-8) continue;
    q.push(v.map((x) => x / n));
  }
  // det(Q) via Gaussian elimination; flip one row if it is −1.
  const m: Float64Array[] = q.map((r) => Float64Array.from(r));
  let det = 1;
  for (let c = 0; c < d; c++) {
    let p = c;
    for (let r = c + 1; r < d; r++)
      if (Math.abs(m[r]?.[c] as number) > Math.abs(m[p]?.[c] as number)) p = r;
    if (p !== c) {
      const t: Float64Array = m[p] as Float64Array;
      m[p] = m[c] as Float64Array;
      m[c] = t;
      det = -det;
    }
    const pivot = (m[c] as Float64Array)[c] as number;
    det *= pivot;
    for (let r = c + 1; r < d; r++) {
      const f = ((m[r] as Float64Array)[c] as number) / pivot;
      for (let k = c; k < d; k++)
        (m[r] as Float64Array)[k] =
          ((m[r] as Float64Array)[k] as number) - f * ((m[c] as Float64Array)[k] as number);
    }
  }
  if (det < 0) q[0] = (q[0] as Float64Array).map((x) => -x);
  return q;
}

/** Generates the pair; everything is drawn from `seed`. */
export function rotatedGaussianPair(options: RotatedGaussianPairOptions = {}): RotatedGaussianPair {
  const fn = 'rotatedGaussianPair';
  const d = options.dim ?? 3;
  const C = options.numClasses ?? 4;
  const nTrain = options.trainPerClass ?? 30;
  const nTest = options.testPerClass ?? 30;
  const sep = options.separation ?? 2;
  const noise = options.noise ?? 0.5;
  for (const [name, v] of [
    ['dim', d],
    ['numClasses', C],
    ['trainPerClass', nTrain],
    ['testPerClass', nTest],
  ] as const)
    if (!Number.isInteger(v) || v < 1)
      throw new Error(`${fn}: ${name} must be a positive integer, got ${v}`);
  const rng = createRng(options.seed ?? 0);
  const means = Array.from({ length: C }, () =>
    Float64Array.from({ length: d }, () => sep * rng.normal()),
  );
  let R: Float64Array[];
  if (options.angle !== undefined) {
    if (d < 2) throw new Error(`${fn}: angle needs dim >= 2, got dim ${d}`);
    R = Array.from({ length: d }, (_, i) => {
      const row = new Float64Array(d);
      row[i] = 1;
      return row;
    });
    const c = Math.cos(options.angle);
    const s = Math.sin(options.angle);
    (R[0] as Float64Array).set([c, -s], 0);
    (R[1] as Float64Array).set([s, c], 0);
  } else R = randomRotation(rng.derive('rotation'), d);
  const shift = Float64Array.from({ length: d }, () => (options.shift ?? 1) * rng.normal());
  let perm: Int32Array;
  if (options.permutation !== undefined) {
    perm = Int32Array.from(options.permutation);
    const seen = new Set(perm);
    if (perm.length !== C || seen.size !== C || perm.some((v) => v < 0 || v >= C))
      throw new Error(`${fn}: permutation must be a permutation of 0..${C - 1}`);
  } else perm = rng.permutation(C);
  const draw = (perClass: number, transform: boolean, stream: string): Split => {
    const r = rng.derive(stream);
    const n = perClass * C;
    const data = new Float64Array(n * d);
    const labels = new Int32Array(n);
    const z = new Float64Array(d);
    for (let j = 0; j < C; j++)
      for (let q = 0; q < perClass; q++) {
        const i = j * perClass + q;
        for (let k = 0; k < d; k++)
          z[k] = ((means[j] as Float64Array)[k] as number) + noise * r.normal();
        for (let k = 0; k < d; k++) {
          let v = z[k] as number;
          if (transform) {
            v = shift[k] as number;
            for (let l = 0; l < d; l++)
              v += ((R[k] as Float64Array)[l] as number) * (z[l] as number);
          }
          data[i * d + k] = v;
        }
        labels[i] = transform ? (perm[j] as number) : j;
      }
    return { features: { data, rows: n, cols: d }, labels };
  };
  return {
    source: {
      train: draw(nTrain, false, 'source-train'),
      test: draw(nTest, false, 'source-test'),
      numClasses: C,
    },
    target: {
      train: draw(nTrain, true, 'target-train'),
      test: draw(nTest, true, 'target-test'),
      numClasses: C,
    },
    rotation: R,
    shift,
    permutation: perm,
    means,
  };
}
