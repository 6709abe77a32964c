import * as tf from '@tensorflow/tfjs-core';

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
