import * as tf from '@tensorflow/tfjs-core';
import { createRng, disposeParams, initBackend } from '@transferlab/core';
import { createBackbone } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { normSession } from './batch-norm.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

const backbone = createBackbone({
  name: 'dense-bn',
  inputShape: [3],
  layers: [
    { kind: 'dense', name: 'fc', units: 2 },
    { kind: 'batchNorm', name: 'bn', momentum: 0.5 },
  ],
});

describe('normSession', () => {
  it('chains the running statistics across passes and commits the last, freeing the rest', () => {
    const params = backbone.init(createRng(0));
    const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = tf.tensor2d([0, 1, 0, 2, 0, 4], [2, 3]);
    const norm = normSession(backbone, true);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      norm.apply(params, a);
      norm.apply(params, b);
    });
    // Two passes keep two sets of (mean, var); the tidy freed everything else.
    expect(tf.memory().numTensors).toBe(before + 4);
    const mean = (x: tf.Tensor) =>
      tf.tidy(() =>
        Array.from(
          tf.mean(backbone.apply(params, x, { taps: ['fc'] }).taps.fc as tf.Tensor, 0).dataSync(),
        ),
      );
    const [ma, mb] = [mean(a), mean(b)];
    const committed = norm.commit({ ...params });
    // running = 0.5·(0.5·0 + 0.5·μ_a) + 0.5·μ_b
    for (const [i, v] of Array.from(committed['bn.running_mean']?.dataSync() ?? []).entries())
      expect(v).toBeCloseTo(0.25 * (ma[i] as number) + 0.5 * (mb[i] as number), 5);
    // The first pass's statistics and the replaced initial ones are freed: the committed pair took their place.
    expect(tf.memory().numTensors).toBe(before);
    disposeParams(committed);
    tf.dispose([a, b]);
  });

  it('inference sessions change nothing; a training session no pass went through is a programming error', () => {
    const params = backbone.init(createRng(0));
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const off = normSession(backbone, false);
    tf.tidy(() => {
      expect(off.apply(params, x).statistics).toBeUndefined();
    });
    expect(off.commit(params)).toBe(params);
    expect(() => normSession(backbone, true).commit(params)).toThrow(
      /no forward pass of "dense-bn" went through this step's session/,
    );
    disposeParams(params);
    x.dispose();
  });
});
