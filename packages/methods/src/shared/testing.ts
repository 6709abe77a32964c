import * as tf from '@tensorflow/tfjs-core';
import { createRng } from '@transferlab/core';
import type { BackboneSpec } from '@transferlab/models';
import type { Batch } from '../types.js';
import { createBatch } from './batch.js';

/**
 * Core's `measureTensorGrowth` for a step that may return a promise (a
 * method's `trainStep` under the v2 contract): `warmup` steps, then `steps`
 * steps with the live tensor count after each; `grew` when the last count
 * exceeds the first. For tests.
 */
export async function measureTensorGrowthAsync(
  step: () => unknown,
  opts: { warmup?: number; steps?: number } = {},
): Promise<{ counts: number[]; grew: boolean; growthPerStep: number }> {
  const warmup = opts.warmup ?? 2;
  const steps = opts.steps ?? 5;
  for (let i = 0; i < warmup; i++) await step();
  const counts: number[] = [];
  for (let i = 0; i < steps; i++) {
    await step();
    counts.push(tf.memory().numTensors);
  }
  const first = counts[0] as number;
  const last = counts[counts.length - 1] as number;
  return { counts, grew: last > first, growthPerStep: (last - first) / Math.max(1, steps - 1) };
}

/** Weights as plain arrays, by parameter name. */
export type Weights = Readonly<Record<string, ArrayLike<number>>>;

/**
 * The largest difference between two weight sets, relative to each
 * parameter's largest magnitude in `b` (at least 1e-2): how the engine tests
 * compare onnxruntime with tfjs. Throws when the names differ. For tests.
 */
export function maxRelDifference(a: Weights, b: Weights): { worst: number; at: string } {
  const names = (w: Weights) => Object.keys(w).sort().join(', ');
  if (names(a) !== names(b))
    throw new Error(`maxRelDifference: different parameters: [${names(a)}] vs [${names(b)}]`);
  let worst = 0;
  let at = '';
  for (const [k, bv] of Object.entries(b)) {
    const av = a[k] as ArrayLike<number>;
    const scale = Math.max(1e-2, ...Array.from(bv, Math.abs));
    for (let i = 0; i < bv.length; i++) {
      const d = Math.abs((av[i] as number) - (bv[i] as number)) / scale;
      if (d > worst) [worst, at] = [d, k];
    }
  }
  return { worst, at };
}

/**
 * A dense network with batch normalisation (dense → BN → ReLU, then a dense
 * ReLU layer when `units2`): the smallest backbone whose normalisation
 * statistics the engine tests follow. For tests.
 */
export function denseBnSpec(inputDim: number, units: number, units2?: number): BackboneSpec {
  return {
    name: 'dense-bn',
    inputShape: [inputDim],
    layers: [
      { kind: 'dense', name: 'fc1', units },
      { kind: 'batchNorm', name: 'bn1' },
      { kind: 'relu', name: 'r1' },
      ...(units2
        ? [{ kind: 'dense' as const, name: 'fc2', units: units2, activation: 'relu' as const }]
        : []),
    ],
  };
}

/** A batch of standard-normal inputs with labels cycling through `classes`. For tests. */
export function randomBatch(
  inputShape: readonly number[],
  n: number,
  seed: number,
  classes: number,
): Batch {
  const size = inputShape.reduce((a, b) => a * b, 1);
  return createBatch(
    Float32Array.from(createRng(seed).normalArray(n * size)),
    Int32Array.from({ length: n }, (_, i) => i % classes),
    inputShape,
  );
}
