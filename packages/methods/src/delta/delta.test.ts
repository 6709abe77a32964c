import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, softmaxCrossEntropy } from '@transferlab/core';
import { createBackbone, linearHead, mlpSpec } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { fitLinearHead, frozenFeatures } from '../shared/host-features.js';
import { type LossOps, tfjsTensorOps } from '../shared/loss-ops.js';
import { stepTensorCounts, testStart, thirdStep } from '../shared/method-testing.js';
import { channelAttention, DELTA_WEIGHTS, delta, deltaPenalty, featureWeights } from './index.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

const rows = (t: tf.Tensor) => Array.from(t.dataSync());

describe('delta', () => {
  it('attention: softmax(z/5) of the standardised CE rise when each channel is zeroed (by hand)', () => {
    // n = 5 examples, maps of H·W = 2 positions × C = 3 channels (channel last), K = 3 classes.
    const [n, hw, c, k] = [5, 2, 3, 3];
    const rng = createRng(7);
    const f = rng.normalArray(n * hw * c);
    const w = rng.normalArray(hw * c * k);
    const bias = [0.1, -0.2, 0.3];
    const y = [0, 1, 2, 1, 0];
    const ce = (zeroed: number) => {
      let total = 0;
      for (let i = 0; i < n; i++) {
        const logits = bias.slice();
        for (let j = 0; j < hw * c; j++)
          if (j % c !== zeroed)
            for (let o = 0; o < k; o++)
              logits[o] =
                (logits[o] as number) + (f[i * hw * c + j] as number) * (w[j * k + o] as number);
        const max = Math.max(...logits);
        const lse = max + Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0));
        total += lse - (logits[y[i] as number] as number);
      }
      return total / n;
    };
    const rise = [0, 1, 2].map((j) => ce(j) - ce(-1));
    const mean = rise.reduce((a, b) => a + b) / c;
    const std = Math.sqrt(rise.reduce((a, b) => a + (b - mean) ** 2, 0) / c);
    const e = rise.map((r) => Math.exp((r - mean) / std / 5));
    const expected = e.map((v) => v / e.reduce((a, b) => a + b));
    const got = tf.tidy(() =>
      channelAttention({
        features: tf.tensor2d(f, [n, hw * c]),
        labels: tf.tensor1d(y, 'int32'),
        weight: tf.tensor2d(w, [hw * c, k]),
        bias: tf.tensor1d(bias),
        channels: c,
      }),
    );
    got.forEach((v, j) => {
      expect(v).toBeCloseTo(expected[j] as number, 5);
    });
    // The distance's weights: C · w_c / (H·W) at every position of channel c.
    expect(Array.from(featureWeights(got, hw * c))).toEqual(
      Array.from({ length: hw * c }, (_, j) => Math.fround((c * (got[j % c] as number)) / hw)),
    );
  });

  it('penalty: α/2 Σ a (f − f⁰)² + β/2 ‖head‖², value and gradient by hand and by finite differences', () => {
    const head = linearHead(4, 2);
    const [alpha, beta] = [0.7, 0.3];
    const rng = createRng(3);
    const [f, f0, a] = [rng.normalArray(12), rng.normalArray(12), [0.5, 1, 1.5, 2]];
    const params = head.init(rng);
    const t = { a: tf.tensor1d(a), f0: tf.tensor2d(f0, [3, 4]) };
    const ops = (p: typeof params) =>
      ({
        ...tfjsTensorOps,
        target: {},
        features: () => t.f0,
        value: () => t.a,
        param: (n: string) => p[n],
      }) as unknown as LossOps<tf.Tensor>;
    const penalty = (x: tf.Tensor, hw: tf.Tensor) =>
      deltaPenalty(head, { alpha, beta })(ops({ ...params, 'head.weight': hw }), x) as tf.Scalar;
    const x = tf.tensor2d(f, [3, 4]);
    const { value, grads } = tf.valueAndGrads(penalty)([x, params['head.weight'] as tf.Tensor]);
    const w = rows(params['head.weight'] as tf.Tensor);
    let byHand = 0;
    f.forEach((v, i) => {
      byHand += (alpha / 2) * (a[i % 4] as number) * (v - (f0[i] as number)) ** 2;
    });
    byHand += (beta / 2) * w.reduce((s, v) => s + v * v, 0);
    expect(rows(value)[0]).toBeCloseTo(byHand, 5);
    rows(grads[0] as tf.Tensor).forEach((g, i) => {
      expect(g).toBeCloseTo(
        alpha * (a[i % 4] as number) * ((f[i] as number) - (f0[i] as number)),
        5,
      );
    });
    rows(grads[1] as tf.Tensor).forEach((g, i) => {
      expect(g).toBeCloseTo(beta * (w[i] as number), 5);
    });
    const h = 1e-2;
    for (const i of [0, 5, 11]) {
      const at = (d: number) =>
        tf.tidy(
          () =>
            rows(
              penalty(
                tf.tensor2d(
                  f.map((v, j) => (j === i ? v + d : v)),
                  [3, 4],
                ),
                params['head.weight'] as tf.Tensor,
              ),
            )[0] as number,
        );
      expect(rows(grads[0] as tf.Tensor)[i]).toBeCloseTo((at(h) - at(-h)) / (2 * h), 3);
    }
    tf.dispose([x, value, ...grads, t.a, t.f0, ...Object.values(params)]);
  });

  const backbone = createBackbone(mlpSpec([3, 3, 1], [8, 6]));
  for (const engine of ['tfjs', 'onnxruntime'] as const) {
    it(`${engine}: the loss is CE + α/2 Σ a (f − f⁰)² + β/2 ‖head‖² (by hand, after the weights moved)`, async () => {
      const c = { alpha: 2, beta: 0.5, backboneLrMultiplier: 1, lr: 0.05 };
      const r = await thirdStep(delta, engine, c, backbone);
      const byHand = tf.tidy(() => {
        const feats = frozenFeatures(backbone, r.pretrained, r.targetTrain);
        const fit = fitLinearHead(
          feats,
          r.targetTrain.y as tf.Tensor1D,
          3,
          100,
          createRng(1).derive('delta:attention'),
        );
        const a = featureWeights(
          channelAttention({
            features: feats,
            labels: r.targetTrain.y as tf.Tensor1D,
            weight: fit.weight,
            bias: fit.bias,
            channels: 6,
          }),
          6,
        );
        const f = backbone.apply(r.before, r.batch.x).features;
        const logits = tf.add(
          tf.matMul(f, r.before['head.weight'] as tf.Tensor2D),
          r.before['head.bias'] as tf.Tensor,
        );
        const drift = tf.sub(f, backbone.apply(r.pretrained, r.batch.x).features);
        const fm = tf.sum(tf.mul(tf.square(drift), tf.tensor1d(a)));
        const l2 = tf.add(
          tf.sum(tf.square(r.before['head.weight'] as tf.Tensor)),
          tf.sum(tf.square(r.before['head.bias'] as tf.Tensor)),
        );
        return rows(
          tf.addN([
            softmaxCrossEntropy(logits, r.batch.y),
            tf.mul(fm, c.alpha / 2),
            tf.mul(l2, c.beta / 2),
          ]),
        )[0] as number;
      });
      expect(Math.abs(rows(r.before['fc1.weight'] as tf.Tensor)[0] as number)).toBeGreaterThan(0);
      expect(r.loss).toBeCloseTo(byHand, 4);
      r.dispose();
    });
  }

  it('takes no tensors per step; refuses bad options and a missing target set', async () => {
    const growth = await stepTensorCounts(delta, {}, backbone);
    expect(growth.grew, `${growth.counts}`).toBe(false);
    expect(() => delta.validate({ alpha: -1 })).toThrow(/alpha must be ≥ 0/);
    expect(() => delta.validate({ attentionSteps: 0 })).toThrow(
      /attentionSteps must be a positive integer/,
    );
    expect(() => delta.validate({ gamma: 1 })).toThrow(/unknown option "gamma"/);
    const start = testStart(backbone);
    const { targetTrain: _, ...ctx } = start.context(delta, {}, 'tfjs');
    await expect(async () => delta.init(ctx)).rejects.toThrow(/needs the target training set/);
    start.dispose();
    expect(DELTA_WEIGHTS).toBe('delta:weights');
  });
});
