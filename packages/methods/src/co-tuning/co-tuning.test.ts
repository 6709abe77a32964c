import * as tf from '@tensorflow/tfjs-core';
import { initBackend, softmaxCrossEntropy } from '@transferlab/core';
import { createBackbone, mlpSpec } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { type LossOps, tfjsTensorOps } from '../shared/loss-ops.js';
import { stepTensorCounts, testStart, thirdStep } from '../shared/method-testing.js';
import { CO_TUNING_TARGETS, categoryRelationship, coTuning, coTuningLoss } from './index.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

const rows = (t: tf.Tensor) => Array.from(t.dataSync());
const softmax = (l: number[], t = 1) => {
  const e = l.map((v) => Math.exp(v / t));
  return e.map((v) => v / e.reduce((a, b) => a + b));
};

describe('co-tuning', () => {
  it('p(y_s | y_t): the source probabilities averaged per target class (by hand); an empty class is uniform', () => {
    const logits = [
      [1, 0, -1],
      [0, 2, 0],
      [3, 1, 0],
      [0, 0, 0],
    ];
    const labels = Int32Array.of(0, 1, 0, 1);
    const r = tf.tidy(() => categoryRelationship(tf.tensor2d(logits), labels, 3, 2));
    const p = logits.map((l) => softmax(l, 2));
    const mean = (a: number[], b: number[]) => a.map((v, i) => (v + (b[i] as number)) / 2);
    const expected = [
      ...mean(p[0] as number[], p[2] as number[]),
      ...mean(p[1] as number[], p[3] as number[]),
      1 / 3,
      1 / 3,
      1 / 3,
    ];
    Array.from(r).forEach((v, i) => {
      expect(v).toBeCloseTo(expected[i] as number, 6);
    });
  });

  it('loss: CE + λ · CE(source head, translated labels), value and gradient by hand and by finite differences', () => {
    const target = {
      prefix: 'head',
      paramNames: ['head.weight', 'head.bias'],
      apply: () =>
        tf.tensor2d([
          [1, 0],
          [0, 1],
        ]),
    };
    const q = [
      [0.2, 0.8],
      [0.6, 0.4],
    ];
    const lambda = 1.5;
    const run = (s: tf.Tensor) => {
      const ops = {
        ...tfjsTensorOps,
        target: { x: tf.zeros([2, 2]), y: tf.tensor1d([0, 1], 'int32') },
        features: (x: tf.Tensor) => x,
        linear: (_f: tf.Tensor, h: { prefix: string }) =>
          h.prefix === 'head'
            ? tf.tensor2d([
                [1, 0],
                [0, 1],
              ])
            : s,
        value: () => tf.tensor2d(q),
      } as unknown as LossOps<tf.Tensor>;
      return coTuningLoss(
        target as never,
        { prefix: 'source_head' } as never,
        lambda,
      )(ops) as tf.Scalar;
    };
    const s = [
      [0.3, -0.5],
      [1.2, 0.1],
    ];
    const { value, grad } = tf.valueAndGrad(run)(tf.tensor2d(s));
    const ce = -Math.log(softmax([1, 0])[0] as number);
    const soft = s.map(
      (l, i) =>
        -(q[i] as number[]).reduce((a, qj, j) => a + qj * Math.log(softmax(l)[j] as number), 0),
    );
    expect(rows(value)[0]).toBeCloseTo(
      ce + (lambda * ((soft[0] as number) + (soft[1] as number))) / 2,
      5,
    );
    // By hand: λ (softmax(s) − q) / n.
    rows(grad).forEach((g, e) => {
      const [i, j] = [Math.floor(e / 2), e % 2];
      expect(g).toBeCloseTo(
        (lambda * ((softmax(s[i] as number[])[j] as number) - (q[i]?.[j] as number))) / 2,
        5,
      );
      const at = (d: number) =>
        rows(
          run(tf.tensor2d(s.map((r, a) => r.map((v, b) => (a === i && b === j ? v + d : v))))),
        )[0] as number;
      expect(g).toBeCloseTo((at(1e-2) - at(-1e-2)) / 2e-2, 3);
    });
  });

  const backbone = createBackbone(mlpSpec([3, 3, 1], [8, 6]));
  for (const engine of ['tfjs', 'onnxruntime'] as const) {
    it(`${engine}: the loss is CE + λ · CE(source head, p(y_s | y)) (by hand, after the weights moved)`, async () => {
      const c = { lambda: 3, temperature: 2, backboneLrMultiplier: 1, lr: 0.05 };
      const r = await thirdStep(coTuning, engine, c, backbone);
      const byHand = tf.tidy(() => {
        const start = r.sourceHead;
        const f0 = backbone.apply(r.pretrained, r.targetTrain.x).features;
        const s0 = tf.add(
          tf.matMul(f0, start['source_head.weight'] as tf.Tensor2D),
          start['source_head.bias'] as tf.Tensor,
        );
        const rel = tf.tensor2d(
          categoryRelationship(s0 as tf.Tensor2D, r.targetTrain.yData, 3, 2),
          [3, 4],
        );
        const f = backbone.apply(r.before, r.batch.x).features;
        const lin = (h: string) =>
          tf.add(
            tf.matMul(f, r.before[`${h}.weight`] as tf.Tensor2D),
            r.before[`${h}.bias`] as tf.Tensor,
          );
        const q = tf.gather(rel, r.batch.y);
        const soft = tf.neg(tf.mean(tf.sum(tf.mul(q, tf.logSoftmax(lin('source_head'))), 1)));
        return rows(
          tf.add(softmaxCrossEntropy(lin('head'), r.batch.y), tf.mul(soft, c.lambda)),
        )[0] as number;
      });
      expect(r.loss).toBeCloseTo(byHand, 4);
      r.dispose();
    });
  }

  it('takes no tensors per step; refuses bad options, a missing source head or target set', async () => {
    const growth = await stepTensorCounts(coTuning, {}, backbone);
    expect(growth.grew, `${growth.counts}`).toBe(false);
    expect(() => coTuning.validate({ lambda: -1 })).toThrow(/lambda must be ≥ 0/);
    expect(() => coTuning.validate({ temperature: 0 })).toThrow(/temperature must be a positive/);
    expect(() => coTuning.validate({ gamma: 1 })).toThrow(/unknown option "gamma"/);
    const start = testStart(backbone);
    const { targetTrain: _, ...noData } = start.context(coTuning, {}, 'tfjs');
    await expect(async () => coTuning.init(noData)).rejects.toThrow(
      /needs the target training set/,
    );
    const { sourceHead: __, ...noHead } = start.context(coTuning, {}, 'tfjs');
    await expect(async () => coTuning.init(noHead)).rejects.toThrow(/needs the source head/);
    start.dispose();
    expect(CO_TUNING_TARGETS).toBe('co-tuning:targets');
  });
});
