import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend } from '@transferlab/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { accuracy, crossEntropy, meanCI, tQuantile975 } from './metrics.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('accuracy and cross-entropy', () => {
  it('count arg-max matches and average -log softmax', () => {
    const logits = tf.tensor2d([
      [2, 0, 0],
      [0, 1, 3],
      [0, 5, 1],
      [1, 1, 0.5],
    ]);
    const y = new Int32Array([0, 2, 0, 1]);
    // arg-max: 0, 2, 1, 0 (ties go to the first index) → 2 of 4 correct
    expect(accuracy(logits, y)).toBe(0.5);
    const rows = [
      [2, 0, 0],
      [0, 1, 3],
      [0, 5, 1],
      [1, 1, 0.5],
    ];
    const expected =
      rows.reduce((acc, r, i) => {
        const lse = Math.log(r.reduce((a, v) => a + Math.exp(v), 0));
        return acc + lse - (r[y[i] as number] as number);
      }, 0) / rows.length;
    expect(crossEntropy(logits, y)).toBeCloseTo(expected, 5);
    logits.dispose();
  });

  it('rejects mismatched lengths', () => {
    const logits = tf.zeros([3, 2]);
    expect(() => accuracy(logits, new Int32Array([0, 1]))).toThrow(/3 predictions but 2 labels/);
    logits.dispose();
  });
});

describe('meanCI', () => {
  it('matches the t interval computed by hand', () => {
    const r = meanCI([1, 2, 3, 4]);
    expect(r.mean).toBe(2.5);
    const sd = Math.sqrt(((1.5 ** 2 + 0.5 ** 2) * 2) / 3);
    expect(r.std).toBeCloseTo(sd, 12);
    expect(r.ci95).toBeCloseTo((3.182 * sd) / 2, 12);
  });

  it('covers the true mean about 95% of the time (Monte Carlo)', () => {
    const rng = createRng(7);
    let covered = 0;
    const trials = 4000;
    for (let t = 0; t < trials; t++) {
      const xs = Array.from({ length: 5 }, () => 3 + 2 * rng.normal());
      const { mean, ci95 } = meanCI(xs);
      if (Math.abs(mean - 3) <= ci95) covered++;
    }
    // binomial sd at p=0.95, n=4000 is 0.0034: ±0.012 is 3.5 sd
    expect(covered / trials).toBeGreaterThan(0.938);
    expect(covered / trials).toBeLessThan(0.962);
  });

  it('t quantile beyond the table approaches the normal quantile', () => {
    expect(tQuantile975(60)).toBeCloseTo(2.0003, 2);
    expect(tQuantile975(1000)).toBeCloseTo(1.9623, 3);
  });
});
