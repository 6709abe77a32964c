import * as tf from '@tensorflow/tfjs-core';

/**
 * Run `step` `warmup + steps` times and return the tensor count after each
 * of the last `steps` runs, plus whether it grew. Used by tests: a training
 * step that leaks a tensor per call shows up as a strictly rising count.
 */
export function measureTensorGrowth(
  step: () => void,
  opts: { warmup?: number; steps?: number } = {},
): { counts: number[]; grew: boolean; growthPerStep: number } {
  const warmup = opts.warmup ?? 2;
  const steps = opts.steps ?? 5;
  for (let i = 0; i < warmup; i++) step();
  const counts: number[] = [];
  for (let i = 0; i < steps; i++) {
    step();
    counts.push(tf.memory().numTensors);
  }
  const first = counts[0] as number;
  const last = counts[counts.length - 1] as number;
  return { counts, grew: last > first, growthPerStep: (last - first) / Math.max(1, steps - 1) };
}
