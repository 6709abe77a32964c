import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@transferlab/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { targetLossReached, ttaBound } from './bound.js';
import { fitStandardizer } from './data.js';
import { trainLipschitzHead } from './head.js';
import { rotatedGaussianPair } from './synthetic.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const TAU = 0.2; // the paper's small-scale τ

describe('ttaBound on a rotated + shifted + label-permuted Gaussian pair', () => {
  // d = 8, 4 classes, 30 samples per class and split; standardised per task.
  const pair = rotatedGaussianPair({ seed: 1, dim: 8, numClasses: 4 });
  const perm = Array.from(pair.permutation);

  it('orders the settings, stays above the target loss reached, and adds up', () => {
    const before = tf.memory().numTensors;
    const reached = targetLossReached(pair.target, { tau: TAU, seed: 1 });
    // One source head for the three settings (trained on the standardised source train split).
    const xs = fitStandardizer(pair.source.train.features).transform(pair.source.train.features);
    const head = trainLipschitzHead(
      { features: xs, labels: pair.source.train.labels },
      { tau: TAU, seed: 2 },
    );
    expect(head.maxGradNormAllLabels).toBeLessThan(1.1 * TAU);
    const common = { tau: TAU, sourceHead: head, epochs: 150, lr: 0.05, seed: 3 };
    // 'none': identity map and identity labels (the target's labels are permuted).
    const none = ttaBound(pair.source, pair.target, { ...common, setting: 'none' });
    // 'A': the true permutation, A and b learned.
    const onlyA = ttaBound(pair.source, pair.target, {
      ...common,
      setting: 'A',
      labelMap: perm,
    });
    // 'all': B from its random initialisation (authors' code), D, A, b learned.
    const all = ttaBound(pair.source, pair.target, { ...common, setting: 'all' });
    expect(tf.memory().numTensors).toBe(before);

    // Measured (wasm): target CE 0.955 (accuracy 1.0); bounds none 1.757 (W 3.86),
    // A 1.185 (W 0.855, τ 0.28), all 1.383 (H 0.21, W 0.855, τ 0.27).
    for (const r of [none, onlyA, all]) {
      const { weightedSourceLoss, conditionalEntropy, wasserstein, lipschitz } = r.terms;
      expect(r.bound).toBeCloseTo(
        weightedSourceLoss + conditionalEntropy + lipschitz * wasserstein,
        12,
      );
      expect(lipschitz).toBeGreaterThanOrEqual(TAU); // 'max' mode: max(τ, measured)
      expect(r.bound).toBeGreaterThanOrEqual(reached.loss);
      // The bound holds for the transformed classifier it is built from, too.
      expect(r.bound).toBeGreaterThanOrEqual(r.diagnostics.transformedTargetLoss);
      expect(r.warnings).toEqual([]);
    }
    expect(reached.accuracy).toBeGreaterThan(0.9);
    expect(none.terms.conditionalEntropy).toBe(0);
    expect(onlyA.terms.conditionalEntropy).toBe(0);
    expect(none.history).toEqual([]);
    expect(onlyA.history).toHaveLength(150);
    expect(onlyA.terms.wasserstein).toBeLessThan(0.5 * none.terms.wasserstein);
    expect(onlyA.bound).toBeLessThan(none.bound);
    expect(all.bound).toBeLessThanOrEqual(none.bound);
    // D stays a distribution, the columns of B too.
    expect(all.transforms.D.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 6);
    for (let j = 0; j < 4; j++)
      expect(all.transforms.B.reduce((s, row) => s + (row[j] as number), 0)).toBeCloseTo(1, 6);
    // The transport term of the objective went down.
    const h = onlyA.history;
    expect((h.at(-1)?.transport as number) < 0.3 * (h[0]?.transport as number)).toBe(true);
  });
});

describe('ttaBound recovers a known rotation', () => {
  it("learns A ≈ R and b ≈ s in setting 'A' with the true label permutation", () => {
    // d = 2, 5 classes, rotation by 1 rad, raw features (no standardisation, so A* = R).
    const pair = rotatedGaussianPair({ seed: 1, dim: 2, numClasses: 5, angle: 1 });
    const r = ttaBound(pair.source, pair.target, {
      setting: 'A',
      labelMap: pair.permutation,
      standardize: false,
      tau: TAU,
      epochs: 150,
      lr: 0.05,
      seed: 4,
      head: { steps: 600 },
    });
    let err = 0;
    pair.rotation.forEach((row, i) => {
      row.forEach((v, k) => {
        err += ((r.transforms.A[i]?.[k] as number) - v) ** 2;
      });
    });
    // Measured: ‖A − R‖_F = 0.14 (‖R‖_F = 1.41), ‖b − s‖ = 0.37 (‖s‖ = 1.6; b absorbs
    // A's error times the class means' norm).
    expect(Math.sqrt(err)).toBeLessThan(0.3);
    const bErr = Math.hypot(...Array.from(r.transforms.b, (v, k) => v - (pair.shift[k] as number)));
    expect(bErr).toBeLessThan(0.6);
    expect(r.diagnostics.invertibility).toBeLessThan(0.05);
    expect(Array.from(r.transforms.labelAssignment)).toEqual(Array.from(pair.permutation));
    const reached = targetLossReached(pair.target, { tau: TAU, standardize: false, seed: 5 });
    expect(r.bound).toBeGreaterThanOrEqual(reached.loss);
  });
});

describe('targetLossReached', () => {
  it('reports the test loss and accuracy with their standard errors over the test examples', () => {
    const pair = rotatedGaussianPair({ seed: 4, dim: 5, numClasses: 3 });
    const target = pair.target;
    const reached = targetLossReached(target, { tau: TAU, standardize: false, seed: 2 });
    // Per-example cross-entropy and correctness from the head's weights, by hand.
    const { weight, bias, numClasses: C, dim } = reached.head;
    const { features, labels } = target.test ?? target.train;
    const losses: number[] = [];
    const hits: number[] = [];
    for (let i = 0; i < features.rows; i++) {
      const z = Array.from({ length: C }, (_, k) => {
        let v = bias[k] as number;
        for (let j = 0; j < dim; j++)
          v += (weight[k * dim + j] as number) * (features.data[i * dim + j] as number);
        return v;
      });
      const top = Math.max(...z);
      const lse = top + Math.log(z.reduce((a, v) => a + Math.exp(v - top), 0));
      const y = labels[i] as number;
      losses.push(lse - (z[y] as number));
      hits.push(z.indexOf(top) === y ? 1 : 0);
    }
    const n = losses.length;
    const meanOf = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    const seOf = (v: number[]) => {
      const m = meanOf(v);
      return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1) / v.length);
    };
    expect(n).toBeGreaterThan(50);
    expect(reached.loss).toBeCloseTo(meanOf(losses), 10);
    expect(reached.lossSe).toBeCloseTo(seOf(losses), 10);
    expect(reached.lossSe).toBeGreaterThan(0.005);
    expect(reached.accuracy).toBeCloseTo(meanOf(hits), 12);
    expect(reached.accuracySe).toBeCloseTo(seOf(hits), 10);
  });
});

describe('ttaBound input errors', () => {
  const ok = {
    train: {
      features: [
        [0, 0, 1],
        [1, 0, 0],
        [0, 1, 0],
        [1, 1, 1],
      ],
      labels: [0, 1, 2, 0],
    },
  };
  it('names the empty set, the missing class and the dimensions', () => {
    expect(() => ttaBound(ok, { train: { features: [], labels: [] } })).toThrow(
      /ttaBound: target.train.features has no rows/,
    );
    expect(() =>
      ttaBound({ train: { features: ok.train.features, labels: [0, 2, 2, 0] } }, ok),
    ).toThrow(/source.train has no samples of class 1/);
    expect(() =>
      ttaBound(ok, { ...ok, test: { features: [[0, 0, 0]], labels: [0] }, numClasses: 3 }),
    ).toThrow(/target.test has no samples of class 1/);
    expect(() =>
      ttaBound(ok, {
        train: {
          features: [
            [0, 0],
            [1, 1],
          ],
          labels: [0, 1],
        },
      }),
    ).toThrow(/source features have dimension 3 but target features have dimension 2/);
    const test2d = {
      features: [
        [1, 2],
        [3, 4],
        [5, 6],
      ],
      labels: [0, 1, 2],
    };
    expect(() => ttaBound({ ...ok, test: test2d }, ok)).toThrow(
      /source.train has dimension 3 but source.test has dimension 2/,
    );
    expect(() =>
      ttaBound({ train: { features: ok.train.features, labels: [0, 1, 2] } }, ok),
    ).toThrow(/source.train.features has 4 rows but source.train.labels has 3 entries/);
  });

  it('asks for a label map when the class counts differ and checks a given head', () => {
    const two = { train: { features: ok.train.features, labels: [0, 1, 1, 0] } };
    expect(() => ttaBound(ok, two, { setting: 'A' })).toThrow(
      /setting 'A' needs labelMap: the source has 3 classes and the target 2/,
    );
    expect(() => ttaBound(ok, two, { setting: 'none', labelMap: [0, 1] })).toThrow(
      /labelMap has 2 entries but the source has 3 classes/,
    );
    const head = { numClasses: 2, dim: 3, weight: new Float64Array(6), bias: new Float64Array(2) };
    expect(() => ttaBound(ok, ok, { setting: 'none', sourceHead: head })).toThrow(
      /sourceHead has 2 classes but the source task has 3/,
    );
    expect(() => ttaBound(ok, ok, { setting: 'B' as 'A' })).toThrow(/setting must be/);
  });
});
