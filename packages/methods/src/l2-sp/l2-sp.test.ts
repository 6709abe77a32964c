import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, softmaxCrossEntropy } from '@transferlab/core';
import { createBackbone, mlpSpec } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { disposeBatch } from '../shared/batch.js';
import { randomBatch } from '../shared/testing.js';
import type { Engine } from '../types.js';
import { l2Sp } from './index.js';

const backbone = createBackbone(mlpSpec([3, 3, 1], [8, 6]));

/** Runs 3 steps; returns the weights before the third and the loss the third step reports. */
async function thirdStep(engine: Engine, options: Record<string, unknown>) {
  const pretrained = backbone.init(createRng(4));
  const state = await l2Sp.init({
    config: l2Sp.validate({ epochs: 1, batchSize: 8, ...options }),
    engine,
    backbone,
    numClasses: 3,
    pretrained,
    rng: createRng(1),
    totalSteps: 3,
  });
  const batches = [0, 1, 2].map((s) => randomBatch(backbone.inputShape, 8, 10 + s, 3));
  for (const step of [0, 1]) await l2Sp.trainStep(state, { target: batches[step] as never, step });
  const before = Object.fromEntries(
    Object.entries(await l2Sp.predictParams(state)).map(([k, v]) => [k, tf.clone(v)]),
  );
  const { loss } = await l2Sp.trainStep(state, { target: batches[2] as never, step: 2 });
  // The same loss by hand: CE + α/2 Σ‖w − w⁰‖² + β/2 Σ‖head‖².
  const c = l2Sp.validate(options);
  const byHand = tf.tidy(() => {
    const b = batches[2] as NonNullable<(typeof batches)[number]>;
    const f = backbone.apply(before, b.x).features;
    const logits = tf.add(
      tf.matMul(f, before['head.weight'] as tf.Tensor2D),
      before['head.bias'] as tf.Tensor,
    );
    let total = softmaxCrossEntropy(logits, b.y).dataSync()[0] as number;
    for (const [k, w0] of Object.entries(pretrained))
      total +=
        (c.alpha / 2) *
        (tf.sum(tf.square(tf.sub(before[k] as tf.Tensor, w0))).dataSync()[0] as number);
    for (const k of ['head.weight', 'head.bias'])
      total += (c.beta / 2) * (tf.sum(tf.square(before[k] as tf.Tensor)).dataSync()[0] as number);
    return total;
  });
  const drift = tf.tidy(
    () =>
      tf
        .sum(
          tf.abs(tf.sub(before['fc1.weight'] as tf.Tensor, pretrained['fc1.weight'] as tf.Tensor)),
        )
        .dataSync()[0] as number,
  );
  await l2Sp.dispose(state);
  tf.dispose([...Object.values(before), ...Object.values(pretrained)]);
  for (const b of batches) disposeBatch(b);
  return { loss, byHand, drift };
}

describe('l2-sp', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
  });

  for (const engine of ['tfjs', 'onnxruntime'] as const) {
    it(`${engine}: the loss is CE + α/2‖w − w⁰‖² + β/2‖head‖² (by hand, after the weights moved)`, async () => {
      // Large α, β so the penalties weigh in the loss.
      const r = await thirdStep(engine, { alpha: 50, beta: 5, backboneLrMultiplier: 1, lr: 0.05 });
      expect(r.drift).toBeGreaterThan(1e-3);
      expect(r.loss).toBeCloseTo(r.byHand, 4);
    });
  }

  it('a stronger α keeps the backbone closer to its start', async () => {
    const loose = await thirdStep('onnxruntime', {
      alpha: 0,
      backboneLrMultiplier: 1,
      lr: 0.05,
      optimizer: 'sgd',
    });
    const tight = await thirdStep('onnxruntime', {
      alpha: 10,
      backboneLrMultiplier: 1,
      lr: 0.05,
      optimizer: 'sgd',
    });
    expect(tight.drift).toBeLessThan(loose.drift);
  });

  it('refuses bad options and a missing start point', async () => {
    expect(() => l2Sp.validate({ alpha: -1 })).toThrow(/alpha must be ≥ 0/);
    expect(() => l2Sp.validate({ gamma: 1 })).toThrow(/unknown option "gamma"/);
    await expect(async () =>
      l2Sp.init({
        config: l2Sp.validate({}),
        backbone,
        numClasses: 3,
        rng: createRng(0),
        totalSteps: 1,
      }),
    ).rejects.toThrow(/l2-sp needs a pretrained backbone/);
  });
});
