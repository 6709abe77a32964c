import * as tf from '@tensorflow/tfjs-core';
import {
  adam,
  BACKENDS,
  createRng,
  disposeOptimizerState,
  disposeParams,
  initBackend,
  mergeParams,
  softmaxCrossEntropy,
  trainStep,
} from '@transferlab/core';
import { createBackboneRegistry, linearHead } from '@transferlab/models';

export interface SpeedResult {
  backend: string;
  backbone: string;
  batchSize: number;
  stepsPerSecond: number;
  examplesPerSecond: number;
  steps: number;
}

/**
 * Training throughput: full steps (forward, backward, Adam update) of a
 * backbone + linear head on random 28×28 inputs, after a warm-up, for about
 * `seconds` per (backend, backbone).
 */
export async function measureSpeed(opts: {
  backends?: readonly string[];
  backbones?: readonly string[];
  batchSize?: number;
  seconds?: number;
}): Promise<{ results: SpeedResult[]; unavailable: { backend: string; error: string }[] }> {
  const batchSize = opts.batchSize ?? 64;
  const seconds = opts.seconds ?? 3;
  const registry = createBackboneRegistry();
  const results: SpeedResult[] = [];
  const unavailable: { backend: string; error: string }[] = [];
  for (const backend of opts.backends ?? BACKENDS) {
    try {
      await initBackend({ backend });
    } catch (err) {
      unavailable.push({ backend, error: (err as Error).message });
      continue;
    }
    for (const id of opts.backbones ?? registry.ids) {
      const backbone = registry.get(id).create([28, 28, 1]);
      const head = linearHead(backbone.featureDim, 10);
      const rng = createRng(0);
      let params = mergeParams(backbone.init(rng), head.init(rng));
      const optimizer = adam({ lr: 1e-3 });
      let state = optimizer.init(params);
      const x = tf.tensor(rng.normalArray(batchSize * 784), [batchSize, 28, 28, 1]);
      const y = tf.tensor1d(
        Int32Array.from({ length: batchSize }, () => rng.int(10)),
        'int32',
      );
      const step = () => {
        ({ params, state } = trainStep({
          params,
          state,
          optimizer,
          loss: (p) => softmaxCrossEntropy(head.apply(p, backbone.apply(p, x).features), y),
        }));
      };
      // One warm-up step and at least one timed step: a ResNet step on the
      // plain-JS cpu backend takes minutes.
      step();
      let steps = 0;
      const started = performance.now();
      while (performance.now() - started < seconds * 1000 || steps < 1) {
        step();
        steps++;
      }
      const elapsed = (performance.now() - started) / 1000;
      results.push({
        backend,
        backbone: backbone.spec.name,
        batchSize,
        steps,
        stepsPerSecond: steps / elapsed,
        examplesPerSecond: (steps * batchSize) / elapsed,
      });
      disposeParams(params);
      disposeOptimizerState(state);
      x.dispose();
      y.dispose();
    }
  }
  return { results, unavailable };
}
