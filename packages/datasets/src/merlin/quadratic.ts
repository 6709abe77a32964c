/**
 * The theory setting of MeRLin (Liu, HaoChen, Wei, Ma 2020, arXiv 2011.01418,
 * "Meta-learning Transferable Representations with a Single Target Domain",
 * the section on quadratic neural networks): a two-layer network with
 * quadratic activation, f(x) = Σ_i a_i (w_i · x)², and a source distribution
 * that contains both transferable features (shared with the target) and
 * source-specific ones, on which pre-training and joint training provably
 * learn the source-specific features while MeRLin recovers the target's
 * ground truth.
 *
 * Provenance. The paper's abstract and introduction state the setting above;
 * the reference copies this module was written from did not include the
 * theory section itself, so the exact distribution below is a reconstruction
 * that has the stated properties, and every choice is documented here rather
 * than attributed to the paper. Check it against the paper's theory section
 * and appendix before quoting a number from it as the paper's.
 *
 * The construction (all directions orthonormal, drawn once from `problemSeed`):
 *
 * - u_1..u_k: transferable directions; a = (+1, −1, +1, …) (length k ≥ 2).
 *   Ground truth: f*(x) = Σ_j a_j (u_j · x)², a quadratic network with k
 *   hidden units (first layer u_j, head a_j).
 * - v_1..v_k: source-specific directions, orthogonal to the u_j.
 * - Target: x = z with z ~ N(0, I_d); regression target f*(x); class
 *   1{f*(x) > 0} (Dataset needs class labels: the sign of the ground truth,
 *   balanced for even k by symmetry).
 * - Source: z ~ N(0, I_d), t_j = u_j · z. With probability p (default 1) the
 *   example carries the source-specific feature: its component along each v_j
 *   is replaced by κ·t_j, i.e. x = z + Σ_j (κ t_j − v_j · z) v_j (κ =
 *   `sourceSpecificScale`); otherwise x = z. The source target is the same
 *   f*(x) computed from t (so f_S(x) = Σ_j a_j (u_j·x)² on every source
 *   example), and on carrying examples also f_S(x) = Σ_j a_j (v_j·x)²/κ²: the
 *   source can be solved by either set of directions.
 *
 * Why pre-training latches onto v (κ > 1): to produce the feature t_j² a
 * hidden unit w = α u_j + β v_j needs α + κβ = 1 on carrying examples; the
 * minimum-norm choice (what weight decay or small-initialisation gradient
 * descent prefer) is α = 1/(1+κ²), β = κ/(1+κ²), mostly along v_j, and the
 * gradient along v_j is κ² times larger. On the target, v_j · x is
 * independent N(0, 1) noise, so such a unit computes (α t_j + β·noise)²: a
 * feature that transfers badly. κ = 0 (or p = 0) removes the shortcut (the
 * v_j-components are zero or pure noise on the source too). MeRLin's outer
 * loss on target data can only be reduced through the u_j.
 */
import { createRng, type Rng } from '@transferlab/core';
import { defineTask } from '../define-task.js';
import type { TaskBuildOptions, TaskSpec } from '../tasks.js';
import type { Dataset, TaskPair } from '../types.js';

export interface QuadraticProblemOptions {
  /** Input dimension d (default 20); must be ≥ 2·rank. */
  readonly dim?: number;
  /** k, the number of transferable directions (default 2, at least 2). */
  readonly rank?: number;
  /** κ ≥ 0: scale of the source-specific copy of t_j (default 3). */
  readonly sourceSpecificScale?: number;
  /** p ∈ [0, 1]: probability that a source example carries it (default 1). */
  readonly sourceSpecificProbability?: number;
  /** Seed of the directions u, v (default 0): the problem stays fixed while `seed` resamples data. */
  readonly problemSeed?: number;
}

export interface QuadraticTransferOptions extends QuadraticProblemOptions {
  /** Seed of the samples (source, target train, val, test). */
  readonly seed: number;
  /** Number of source examples (default 2000). */
  readonly sourceSize?: number;
  /** Target training examples per class (default 10). */
  readonly labelsPerClass?: number;
  /** Target validation examples per class (default 10). */
  readonly valPerClass?: number;
  /** Target test examples per class (default 500). */
  readonly testPerClass?: number;
}

export interface QuadraticGroundTruth {
  readonly dim: number;
  readonly rank: number;
  /** u_1..u_k, row-major k × d: first layer of the ground truth (the transferable directions). */
  readonly targetDirections: Float32Array;
  /** a_1..a_k: head of the ground truth, (+1, −1, +1, …). */
  readonly headWeights: Float32Array;
  /** v_1..v_k, row-major k × d: the source-specific directions. */
  readonly sourceSpecificDirections: Float32Array;
  readonly sourceSpecificScale: number;
  readonly sourceSpecificProbability: number;
}

export interface QuadraticTransferProblem {
  readonly pair: TaskPair;
  readonly groundTruth: QuadraticGroundTruth;
  /** Real-valued regression targets f*(x), aligned with each split's examples. */
  readonly targets: {
    readonly source: Float32Array;
    readonly targetTrain: Float32Array;
    readonly targetVal: Float32Array;
    readonly targetTest: Float32Array;
  };
  /** carriers[i] = 1 when source example i carries the source-specific feature. */
  readonly sourceCarriers: Uint8Array;
}

const CLASS_NAMES = ['negative', 'positive'] as const;

function positiveInt(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`merlin-quadratic: ${what} must be a positive integer, got ${value}`);
  return value;
}

function resolveProblem(opts: QuadraticProblemOptions): Required<QuadraticProblemOptions> {
  const dim = positiveInt(opts.dim ?? 20, 'dim');
  const rank = positiveInt(opts.rank ?? 2, 'rank');
  if (rank < 2)
    throw new Error(
      'merlin-quadratic: rank must be at least 2 (with one direction the sign of f* is constant)',
    );
  if (dim < 2 * rank)
    throw new Error(
      `merlin-quadratic: dim (${dim}) must be at least 2·rank (${2 * rank}) to hold the transferable and source-specific directions`,
    );
  const sourceSpecificScale = opts.sourceSpecificScale ?? 3;
  if (!(Number.isFinite(sourceSpecificScale) && sourceSpecificScale >= 0))
    throw new Error(
      `merlin-quadratic: sourceSpecificScale must be a finite number ≥ 0, got ${sourceSpecificScale}`,
    );
  const sourceSpecificProbability = opts.sourceSpecificProbability ?? 1;
  if (!(sourceSpecificProbability >= 0 && sourceSpecificProbability <= 1))
    throw new Error(
      `merlin-quadratic: sourceSpecificProbability must be in [0, 1], got ${sourceSpecificProbability}`,
    );
  const problemSeed = opts.problemSeed ?? 0;
  if (!Number.isFinite(problemSeed))
    throw new Error(`merlin-quadratic: problemSeed must be a finite number, got ${problemSeed}`);
  return { dim, rank, sourceSpecificScale, sourceSpecificProbability, problemSeed };
}

/** 2k orthonormal vectors in R^d: Gram–Schmidt (twice, in float64) on Gaussian draws. */
function orthonormalRows(count: number, dim: number, rng: Rng): Float64Array[] {
  const rows: Float64Array[] = [];
  while (rows.length < count) {
    const v = Float64Array.from({ length: dim }, () => rng.normal());
    for (let pass = 0; pass < 2; pass++) {
      for (const r of rows) {
        let dot = 0;
        for (let i = 0; i < dim; i++) dot += (v[i] as number) * (r[i] as number);
        for (let i = 0; i < dim; i++) v[i] = (v[i] as number) - dot * (r[i] as number);
      }
    }
    let norm = 0;
    for (let i = 0; i < dim; i++) norm += (v[i] as number) ** 2;
    norm = Math.sqrt(norm);
    if (norm < 1e-6) continue; // (practically never) a draw inside the span: draw again
    for (let i = 0; i < dim; i++) v[i] = (v[i] as number) / norm;
    rows.push(v);
  }
  return rows;
}

/**
 * The directions and head of the problem (depend only on `problemSeed`, `dim`
 * and `rank`), for measuring what a trained first layer recovered.
 */
export function quadraticGroundTruth(opts: QuadraticProblemOptions = {}): QuadraticGroundTruth {
  const p = resolveProblem(opts);
  const rows = orthonormalRows(
    2 * p.rank,
    p.dim,
    createRng(p.problemSeed).derive('merlin-quadratic-directions'),
  );
  const pack = (from: number): Float32Array => {
    const out = new Float32Array(p.rank * p.dim);
    for (let j = 0; j < p.rank; j++) out.set(rows[from + j] as Float64Array, j * p.dim);
    return out;
  };
  return {
    dim: p.dim,
    rank: p.rank,
    targetDirections: pack(0),
    headWeights: Float32Array.from({ length: p.rank }, (_, j) => (j % 2 === 0 ? 1 : -1)),
    sourceSpecificDirections: pack(p.rank),
    sourceSpecificScale: p.sourceSpecificScale,
    sourceSpecificProbability: p.sourceSpecificProbability,
  };
}

function dotRow(m: Float32Array, row: number, x: ArrayLike<number>, offset: number, d: number) {
  let s = 0;
  for (let i = 0; i < d; i++) s += (m[row * d + i] as number) * (x[offset + i] as number);
  return s;
}

/** f*(x) = Σ_j a_j (u_j · x)² for the example starting at `offset` in `x`. */
export function quadraticTarget(
  gt: QuadraticGroundTruth,
  x: ArrayLike<number>,
  offset = 0,
): number {
  let y = 0;
  for (let j = 0; j < gt.rank; j++)
    y += (gt.headWeights[j] as number) * dotRow(gt.targetDirections, j, x, offset, gt.dim) ** 2;
  return y;
}

/**
 * Where the energy of a first layer lies: for weight rows w_i (row-major,
 * each of length d), the fractions of Σ_i ‖w_i‖² inside span(u), inside
 * span(v) and in the rest. A layer that recovered the target ground truth has
 * `transferable` ≈ 1; one that learned the shortcut has `sourceSpecific` large.
 */
export function directionEnergy(
  gt: QuadraticGroundTruth,
  weights: ArrayLike<number>,
): { transferable: number; sourceSpecific: number; rest: number } {
  const d = gt.dim;
  if (weights.length === 0 || weights.length % d !== 0)
    throw new Error(
      `directionEnergy: weights have ${weights.length} values, not a positive multiple of dim ${d}`,
    );
  let total = 0;
  let onU = 0;
  let onV = 0;
  for (let r = 0; r < weights.length / d; r++) {
    for (let i = 0; i < d; i++) total += (weights[r * d + i] as number) ** 2;
    for (let j = 0; j < gt.rank; j++) {
      onU += dotRow(gt.targetDirections, j, weights, r * d, d) ** 2;
      onV += dotRow(gt.sourceSpecificDirections, j, weights, r * d, d) ** 2;
    }
  }
  if (!(total > 0)) throw new Error('directionEnergy: all weights are zero');
  return {
    transferable: onU / total,
    sourceSpecific: onV / total,
    rest: Math.max(0, 1 - (onU + onV) / total),
  };
}

interface Sample {
  x: Float32Array;
  y: Int32Array;
  f: Float32Array;
}

/** Exactly `perClass` target examples of each class, in order of generation. */
function sampleTarget(gt: QuadraticGroundTruth, perClass: number, rng: Rng): Sample {
  const d = gt.dim;
  const n = 2 * perClass;
  const out: Sample = { x: new Float32Array(n * d), y: new Int32Array(n), f: new Float32Array(n) };
  const counts = [0, 0];
  const z = new Float32Array(d);
  let k = 0;
  while (k < n) {
    for (let i = 0; i < d; i++) z[i] = rng.normal();
    const f = quadraticTarget(gt, z);
    const label = f > 0 ? 1 : 0;
    if ((counts[label] as number) >= perClass) continue;
    counts[label] = (counts[label] as number) + 1;
    out.x.set(z, k * d);
    out.y[k] = label;
    out.f[k] = f;
    k++;
  }
  return out;
}

function sampleSource(
  gt: QuadraticGroundTruth,
  n: number,
  rng: Rng,
): Sample & { carriers: Uint8Array } {
  const d = gt.dim;
  const kappa = gt.sourceSpecificScale;
  const out = {
    x: new Float32Array(n * d),
    y: new Int32Array(n),
    f: new Float32Array(n),
    carriers: new Uint8Array(n),
  };
  const z = new Float64Array(d);
  const t = new Float64Array(gt.rank);
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < d; i++) z[i] = rng.normal();
    const carry = rng.next() < gt.sourceSpecificProbability;
    let f = 0;
    for (let j = 0; j < gt.rank; j++) {
      t[j] = dotRow(gt.targetDirections, j, z, 0, d);
      f += (gt.headWeights[j] as number) * (t[j] as number) ** 2;
    }
    if (carry) {
      // Replace the component along v_j by κ t_j (the v_j are orthonormal, so one at a time).
      for (let j = 0; j < gt.rank; j++) {
        const shift = kappa * (t[j] as number) - dotRow(gt.sourceSpecificDirections, j, z, 0, d);
        for (let i = 0; i < d; i++)
          z[i] = (z[i] as number) + shift * (gt.sourceSpecificDirections[j * d + i] as number);
      }
    }
    for (let i = 0; i < d; i++) out.x[s * d + i] = z[i] as number;
    out.y[s] = f > 0 ? 1 : 0;
    out.f[s] = f;
    out.carriers[s] = carry ? 1 : 0;
  }
  return out;
}

function toDataset(name: string, sample: Sample, dim: number): Dataset {
  return {
    name,
    x: sample.x,
    y: sample.y,
    shape: [dim],
    numClasses: 2,
    classNames: [...CLASS_NAMES],
  };
}

/**
 * Sample one instance of the setting (see the module comment): a TaskPair
 * with vector inputs (shape [dim], 2 classes = sign of f*), the ground truth,
 * and the real-valued targets of every split. Source, target train, val and
 * test come from independent streams derived from `seed`, and target train is
 * drawn first-come per class, so for one seed a larger `labelsPerClass`
 * extends the smaller training set. Directions come from `problemSeed`.
 */
export function quadraticTransferTask(opts: QuadraticTransferOptions): QuadraticTransferProblem {
  if (!Number.isFinite(opts.seed))
    throw new Error(`merlin-quadratic: seed must be a finite number, got ${opts.seed}`);
  const gt = quadraticGroundTruth(opts);
  const sourceSize = positiveInt(opts.sourceSize ?? 2000, 'sourceSize');
  const labelsPerClass = positiveInt(opts.labelsPerClass ?? 10, 'labelsPerClass');
  const valPerClass = positiveInt(opts.valPerClass ?? 10, 'valPerClass');
  const testPerClass = positiveInt(opts.testPerClass ?? 500, 'testPerClass');
  const rng = createRng(opts.seed);
  const source = sampleSource(gt, sourceSize, rng.derive('source'));
  const train = sampleTarget(gt, labelsPerClass, rng.derive('target-train'));
  const val = sampleTarget(gt, valPerClass, rng.derive('target-val'));
  const test = sampleTarget(gt, testPerClass, rng.derive('target-test'));
  const id = 'merlin-quadratic';
  const d = gt.dim;
  const pair: TaskPair = {
    id,
    description:
      `MeRLin theory setting (reconstruction): d=${d}, k=${gt.rank} transferable directions, source-specific ` +
      `copies at scale κ=${gt.sourceSpecificScale} with probability ${gt.sourceSpecificProbability}; ` +
      'class = sign of f*(x) = Σ_j a_j (u_j·x)².',
    source: { train: toDataset(`${id}/source`, source, d) },
    target: {
      train: toDataset(`${id}/target-train`, train, d),
      val: toDataset(`${id}/target-val`, val, d),
      test: toDataset(`${id}/target-test`, test, d),
    },
    seed: opts.seed,
    labelsPerClass,
  };
  return {
    pair,
    groundTruth: gt,
    targets: { source: source.f, targetTrain: train.f, targetVal: val.f, targetTest: test.f },
    sourceCarriers: source.carriers,
  };
}

export interface QuadraticTaskBuildOptions extends TaskBuildOptions, QuadraticProblemOptions {}

export interface QuadraticTaskSpec extends TaskSpec {
  build(opts: QuadraticTaskBuildOptions): Promise<TaskPair>;
  /** Problem parameters used when the build options do not override them. */
  readonly problem: Required<QuadraticProblemOptions>;
}

/**
 * A TaskSpec for the setting with fixed default parameters (each may be
 * overridden per build through `QuadraticTaskBuildOptions`). `sourceSize`
 * defaults to 2000 and `testPerClass` to 500; `normalization` applies to x.
 */
export function quadraticTaskSpec(
  params: QuadraticProblemOptions & { readonly id?: string; readonly description?: string } = {},
): QuadraticTaskSpec {
  const problem = resolveProblem(params);
  const id = params.id ?? 'merlin-quadratic';
  const description =
    params.description ??
    `MeRLin's theory setting (a reconstruction, see merlin/quadratic.ts): vectors x ∈ R^${problem.dim}; target ` +
      `class = sign of f*(x) = Σ_j a_j (u_j·x)² over ${problem.rank} orthonormal directions (a = +1, −1, …), ` +
      `x ~ N(0, I); source: the same labels, but each example's components along ${problem.rank} ` +
      `source-specific directions v_j hold κ·(u_j·x) (κ = ${problem.sourceSpecificScale}, probability ` +
      `${problem.sourceSpecificProbability}), so the source is solvable from u or v. Source 2000 examples ` +
      '(sourceSize), target few labels per class (default 10), 10/class validation, 500/class test.';
  const spec = defineTask<QuadraticTaskBuildOptions>(
    id,
    description,
    async (opts, meta) => {
      const overrides = definedProblemOverrides(opts);
      const { pair } = quadraticTransferTask({
        ...problem,
        ...overrides,
        seed: opts.seed,
        ...(opts.sourceSize !== undefined ? { sourceSize: opts.sourceSize } : {}),
        ...(opts.labelsPerClass !== undefined ? { labelsPerClass: opts.labelsPerClass } : {}),
        ...(opts.valPerClass !== undefined ? { valPerClass: opts.valPerClass } : {}),
        ...(opts.testPerClass !== undefined ? { testPerClass: opts.testPerClass } : {}),
      });
      const changed = Object.keys(overrides).length > 0;
      return {
        ...pair,
        id: meta.id,
        description: changed
          ? `${meta.description} Built with ${JSON.stringify(overrides)}.`
          : meta.description,
      };
    },
    ['dim', 'rank', 'sourceSpecificScale', 'sourceSpecificProbability', 'problemSeed'],
  );
  return { ...spec, problem };
}

function definedProblemOverrides(opts: QuadraticProblemOptions): QuadraticProblemOptions {
  const out: { -readonly [K in keyof QuadraticProblemOptions]: QuadraticProblemOptions[K] } = {};
  if (opts.dim !== undefined) out.dim = opts.dim;
  if (opts.rank !== undefined) out.rank = opts.rank;
  if (opts.sourceSpecificScale !== undefined) out.sourceSpecificScale = opts.sourceSpecificScale;
  if (opts.sourceSpecificProbability !== undefined)
    out.sourceSpecificProbability = opts.sourceSpecificProbability;
  if (opts.problemSeed !== undefined) out.problemSeed = opts.problemSeed;
  return out;
}

/** The default theory task: d = 20, k = 2, κ = 3, p = 1, problemSeed 0. */
export const merlinQuadratic: QuadraticTaskSpec = quadraticTaskSpec();
