/**
 * The simulation MeRLin's authors ran for their theory section (Liu, HaoChen,
 * Wei, Ma 2020, arXiv 2011.01418; their code: github.com/Liuhong99/MeRLin,
 * `Toy/train.py`, read for the construction, not copied). Inputs are
 * ternary, x ∈ {−1, 0, 1}^d uniformly, except two coordinates:
 *
 * - a ∈ {1, −1, 0} with probabilities (¼, ¼, ½) decides the label: class 1
 *   when a = 0 ("the coordinate is off"), class 0 otherwise, i.e. the label
 *   is 1 − a², a quadratic function of the input;
 * - source: x₁ = κ·a (the source-specific coordinate) and x₂ = ±a (the
 *   transferable coordinate, random sign): either coordinate solves the source;
 * - target: x₁ = 0, x₂ = a: only the transferable coordinate is informative.
 *
 * The authors' code has κ = 1 (d = 500, 10 000 source examples, 20 target
 * examples). `sourceSpecificScale` κ is our addition, the shortcut's strength:
 * κ = 0 removes the source-specific feature (the source is then the target
 * distribution with more data), κ = 1 is the authors' toy, κ > 1 makes the
 * shortcut the larger-margin and the minimum-norm solution of the source, which
 * pre-training (and the source half of joint training) then prefers. On the
 * target, a network that learned e₁ sees a constant 0; one that memorises the
 * few target examples with the d − 2 noise coordinates does not generalise;
 * only e₂ transfers. What an algorithm learned is measured by
 * `toyDirectionEnergy` on the first layer.
 */
import { createRng, type Rng } from '@transferlab/core';
import { defineTask } from '../define-task.js';
import type { TaskBuildOptions, TaskSpec } from '../tasks.js';
import type { Dataset, TaskPair } from '../types.js';

export interface MerlinToyOptions {
  /** Input dimension d ≥ 3 (default 500, the authors'). */
  readonly dim?: number;
  /** κ ≥ 0: the source-specific coordinate x₁ = κ·a on the source (default 1, the authors'). */
  readonly sourceSpecificScale?: number;
  /** Source examples (default 10 000, the authors'). */
  readonly sourceSize?: number;
}

export interface MerlinToyTaskBuildOptions extends TaskBuildOptions, MerlinToyOptions {}

const ID = 'merlin-toy';
/** Class 0: the informative coordinate is ±1 ("on"); class 1: it is 0 ("off"). */
const CLASS_NAMES = ['on', 'off'] as const;
/** Index of the source-specific coordinate x₁ and the transferable one x₂. */
export const TOY_SOURCE_SPECIFIC = 0;
export const TOY_TRANSFERABLE = 1;

function intAtLeast(value: number, min: number, what: string): number {
  if (!Number.isInteger(value) || value < min)
    throw new Error(`${ID}: ${what} must be an integer ≥ ${min}, got ${value}`);
  return value;
}

/** a ∈ {1, −1, 0} with probabilities (¼, ¼, ½). */
function drawA(rng: Rng): number {
  const u = rng.next();
  return u < 0.25 ? 1 : u < 0.5 ? -1 : 0;
}

function noise(x: Float32Array, offset: number, d: number, rng: Rng): void {
  for (let i = 0; i < d; i++) x[offset + i] = Math.floor(rng.next() * 3) - 1;
}

function dataset(name: string, x: Float32Array, y: Int32Array, d: number): Dataset {
  return { name, x, y, shape: [d], numClasses: 2, classNames: [...CLASS_NAMES] };
}

function sampleSource(n: number, d: number, kappa: number, rng: Rng): Dataset {
  const x = new Float32Array(n * d);
  const y = new Int32Array(n);
  for (let s = 0; s < n; s++) {
    noise(x, s * d, d, rng);
    const a = drawA(rng);
    // `+ 0` turns κ = 0's −0 into 0.
    x[s * d + TOY_SOURCE_SPECIFIC] = kappa * a + 0;
    x[s * d + TOY_TRANSFERABLE] = rng.next() < 0.5 ? a : -a;
    y[s] = a === 0 ? 1 : 0;
  }
  return dataset(`${ID}/source`, x, y, d);
}

/** Exactly `perClass` target examples per class (first come, so a larger count extends a smaller one). */
function sampleTarget(split: string, perClass: number, d: number, rng: Rng): Dataset {
  const n = 2 * perClass;
  const x = new Float32Array(n * d);
  const y = new Int32Array(n);
  const counts = [0, 0];
  const row = new Float32Array(d);
  for (let k = 0; k < n; ) {
    noise(row, 0, d, rng);
    const a = drawA(rng);
    const label = a === 0 ? 1 : 0;
    if ((counts[label] as number) >= perClass) continue;
    counts[label] = (counts[label] as number) + 1;
    row[TOY_SOURCE_SPECIFIC] = 0;
    row[TOY_TRANSFERABLE] = a;
    x.set(row, k * d);
    y[k] = label;
    k++;
  }
  return dataset(`${ID}/${split}`, x, y, d);
}

/** Build one instance; independent streams per split, derived from `seed`. */
export function merlinToyPair(opts: MerlinToyTaskBuildOptions): TaskPair {
  if (!Number.isFinite(opts.seed))
    throw new Error(`${ID}: seed must be a finite number, got ${opts.seed}`);
  const d = intAtLeast(opts.dim ?? 500, 3, 'dim');
  const kappa = opts.sourceSpecificScale ?? 1;
  if (!(Number.isFinite(kappa) && kappa >= 0))
    throw new Error(`${ID}: sourceSpecificScale must be a finite number ≥ 0, got ${kappa}`);
  const sourceSize = intAtLeast(opts.sourceSize ?? 10_000, 1, 'sourceSize');
  // The authors' 20 target examples: 10 per class.
  const labelsPerClass = intAtLeast(opts.labelsPerClass ?? 10, 1, 'labelsPerClass');
  const valPerClass = intAtLeast(opts.valPerClass ?? 10, 1, 'valPerClass');
  const testPerClass = intAtLeast(opts.testPerClass ?? 2000, 1, 'testPerClass');
  const rng = createRng(opts.seed);
  return {
    id: ID,
    description: `MeRLin authors' simulation: d=${d}, source-specific scale κ=${kappa}, ${sourceSize} source examples`,
    source: { train: sampleSource(sourceSize, d, kappa, rng.derive('source')) },
    target: {
      train: sampleTarget('target-train', labelsPerClass, d, rng.derive('target-train')),
      val: sampleTarget('target-val', valPerClass, d, rng.derive('target-val')),
      test: sampleTarget('target-test', testPerClass, d, rng.derive('target-test')),
    },
    seed: opts.seed,
    labelsPerClass,
  };
}

/**
 * Where a first layer's weight energy lies: the fractions of Σ_i ‖w_i‖² on the
 * source-specific coordinate, on the transferable one, and on the d − 2 noise
 * coordinates. `weights` is the tfjs dense kernel, [d, units] row-major.
 */
export function toyDirectionEnergy(
  weights: ArrayLike<number>,
  dim: number,
): { transferable: number; sourceSpecific: number; rest: number } {
  if (weights.length === 0 || weights.length % dim !== 0)
    throw new Error(
      `toyDirectionEnergy: ${weights.length} weights are not a positive multiple of dim ${dim}`,
    );
  const units = weights.length / dim;
  let total = 0;
  const onRow = [0, 0];
  for (let i = 0; i < dim; i++) {
    for (let u = 0; u < units; u++) {
      const w2 = (weights[i * units + u] as number) ** 2;
      total += w2;
      if (i === TOY_SOURCE_SPECIFIC) onRow[0] = (onRow[0] as number) + w2;
      if (i === TOY_TRANSFERABLE) onRow[1] = (onRow[1] as number) + w2;
    }
  }
  if (!(total > 0)) throw new Error('toyDirectionEnergy: all weights are zero');
  const sourceSpecific = (onRow[0] as number) / total;
  const transferable = (onRow[1] as number) / total;
  return { transferable, sourceSpecific, rest: Math.max(0, 1 - transferable - sourceSpecific) };
}

export const merlinToy: TaskSpec = defineTask<MerlinToyTaskBuildOptions>(
  ID,
  "MeRLin authors' simulation (Liuhong99/MeRLin Toy): x ∈ {−1,0,1}^500, label = 1 − a²; source x₁ = κa (source-specific) and x₂ = ±a (transferable); target x₁ = 0, x₂ = a; 10 000 source examples, 10 target labels per class. Options: sourceSpecificScale κ (default 1), dim, sourceSize.",
  async (opts) => merlinToyPair(opts),
  ['dim', 'sourceSpecificScale'],
);
