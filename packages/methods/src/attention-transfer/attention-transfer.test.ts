import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, type Params } from '@transferlab/core';
import { cnnSpec, createBackbone, mlpSpec } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { batchFromTensors } from '../shared/batch.js';
import type { TapPair } from '../shared/feature-transfer.js';
import { measureTensorGrowthAsync } from '../shared/testing.js';
import type { Batch, MethodContext } from '../types.js';
import { attentionLoss, attentionMap, attentionTransfer } from './index.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const source = createBackbone(cnnSpec([8, 8, 1], [4, 6], 8));
const rand = (shape: number[], seed: number) =>
  tf.tensor(createRng(seed).normalArray(shape.reduce((a, b) => a * b, 1)), shape);
const pairOf = (s: [number, number, number], t: [number, number, number]): TapPair => ({
  index: 0,
  source: 's',
  target: 't',
  sourceShape: s,
  targetShape: t,
});

function batch(seed: number, n = 12): Batch {
  const rng = createRng(seed);
  const y = Int32Array.from({ length: n }, (_, i) => i % 3);
  const x = Float32Array.from({ length: n * 64 }, (_, i) => {
    const p = i % 64;
    const quadrant = (p % 8 < 4 ? 0 : 1) + (p < 32 ? 0 : 1);
    return 0.3 * rng.normal() + (quadrant === y[Math.floor(i / 64)] ? 1 : 0);
  });
  return batchFromTensors(tf.tensor4d(x, [n, 8, 8, 1]), tf.tensor1d(y, 'int32'));
}

function context<C>(config: C, pretrained: Params): MethodContext<C> {
  return { config, backbone: source, numClasses: 3, pretrained, rng: createRng(0), totalSteps: 30 };
}

describe('attention-transfer', () => {
  it('attention maps: unit norm per example, blind to the channel count and to scale', async () => {
    tf.tidy(() => {
      const a = rand([3, 4, 4, 5], 1) as tf.Tensor4D;
      const q = attentionMap(a);
      expect(q.shape).toEqual([3, 16]);
      const norms = tf.sqrt(tf.sum(tf.square(q), 1)).dataSync();
      for (const n of norms) expect(n).toBeCloseTo(1, 5);
      // Scaling the activations, or stacking copies of the channels, changes nothing.
      const scaled = tf.mul(a, 3) as tf.Tensor4D;
      const doubled = tf.concat([a, a], 3) as tf.Tensor4D;
      const pair = pairOf([4, 4, 5], [4, 4, 10]);
      expect(attentionLoss(a, scaled, pair).dataSync()[0]).toBeLessThan(1e-10);
      expect(attentionLoss(a, doubled, pair).dataSync()[0]).toBeLessThan(1e-10);
      expect(
        attentionLoss(a, rand([3, 4, 4, 2], 2) as tf.Tensor4D, pair).dataSync()[0],
      ).toBeGreaterThan(1e-3);
      // A source at another resolution is compared after resizing its attention map.
      const coarse = rand([3, 2, 2, 5], 3) as tf.Tensor4D;
      const up = tf.image.resizeBilinear(
        tf.mean(tf.square(coarse), 3, true) as tf.Tensor4D,
        [4, 4],
        false,
        true,
      );
      const loss = attentionLoss(coarse, tf.sqrt(up) as tf.Tensor4D, pairOf([2, 2, 5], [4, 4, 1]));
      expect(loss.dataSync()[0]).toBeLessThan(1e-10);
    });
  });

  it('gradient sanity: the AT loss gradient in the target map agrees with finite differences', async () => {
    const s = rand([2, 4, 4, 3], 4) as tf.Tensor4D;
    const t = rand([2, 4, 4, 2], 5) as tf.Tensor4D;
    const d = rand([2, 4, 4, 2], 6);
    const pair = pairOf([4, 4, 3], [4, 4, 2]);
    const f = (x: tf.Tensor) => attentionLoss(s, x as tf.Tensor4D, pair);
    const analytic = tf.tidy(() => tf.sum(tf.mul(tf.grad(f)(t), d)).dataSync()[0] as number);
    const at = (h: number) => tf.tidy(() => f(tf.add(t, tf.mul(d, h))).dataSync()[0] as number);
    const fd = (at(1e-2) - at(-1e-2)) / 2e-2;
    expect(Math.abs(analytic - fd) / Math.abs(fd)).toBeLessThan(2e-3);
    tf.dispose([s, t, d]);
  });

  it('one-to-one pairs by default; clear error for taps without spatial extent', async () => {
    const pretrained = source.init(createRng(1));
    const state = await attentionTransfer.init(context(attentionTransfer.validate({}), pretrained));
    expect(state.pairs.map((p) => `${p.source}->${p.target}`)).toEqual([
      'conv1->conv1',
      'conv2->conv2',
    ]);
    expect(Object.keys(state.params).some((n) => n.startsWith('connector'))).toBe(false);
    await attentionTransfer.dispose(state);
    const before = tf.memory().numTensors;
    await expect(
      attentionTransfer.init(
        context(attentionTransfer.validate({ sourceTaps: ['fc'], targetTaps: ['fc'] }), pretrained),
      ),
    ).rejects.toThrow(
      /pair fc → fc has no spatial extent .* attention maps need conv feature maps/,
    );
    expect(tf.memory().numTensors).toBe(before);
    const mlp = createBackbone(mlpSpec([8, 8, 1], [16]));
    const mlpWeights = mlp.init(createRng(2));
    await expect(
      attentionTransfer.init({
        ...context(attentionTransfer.validate({ targetBackbone: 'cnn' }), mlpWeights),
        backbone: mlp,
      }),
    ).rejects.toThrow(/one-to-one' needs as many source taps as target taps|cannot match/);
    tf.dispose([...Object.values(pretrained), ...Object.values(mlpWeights)]);
  });

  it('trains a target of another width: the loss falls, no leaks', async () => {
    const pretrained = source.init(createRng(1));
    let state = await attentionTransfer.init(
      context(
        attentionTransfer.validate({
          lr: 0.05,
          targetBackbone: 'cnn',
          targetChannels: [3, 5],
          targetDenseUnits: 8,
        }),
        pretrained,
      ),
    );
    const b = batch(1);
    let step = 0;
    const losses: number[] = [];
    const growth = await measureTensorGrowthAsync(
      async () => {
        const out = await attentionTransfer.trainStep(state, { target: b, step: step++ });
        state = out.state;
        losses.push(out.loss);
      },
      { warmup: 2, steps: 15 },
    );
    expect(growth.grew).toBe(false);
    expect(losses[losses.length - 1]).toBeLessThan((losses[0] as number) * 0.8);
    const logits = attentionTransfer.predict(state, state.params, b.x);
    expect(logits.shape).toEqual([12, 3]);
    logits.dispose();
    await attentionTransfer.dispose(state);
    tf.dispose([b.x, b.y, ...Object.values(pretrained)]);
  });
});

describe('attention-transfer with a batch-normalised target', () => {
  it('trains it with batch statistics (running averages follow the batches, the optimizer never sees them); no leaks', async () => {
    const targetSpec = {
      name: 'cnn-bn',
      inputShape: [8, 8, 1],
      layers: [
        { kind: 'conv2d', name: 'c1', filters: 4, kernelSize: 3 },
        { kind: 'batchNorm', name: 'bn1' },
        { kind: 'relu', name: 'r1' },
        { kind: 'maxPool', name: 'p1', size: 2 },
        { kind: 'conv2d', name: 'c2', filters: 6, kernelSize: 3, activation: 'relu' },
        { kind: 'flatten', name: 'flat' },
      ],
    } as const;
    const pretrained = source.init(createRng(1));
    const config = attentionTransfer.validate({ targetBackbone: 'spec', targetSpec });
    let state = await attentionTransfer.init(context(config, pretrained));
    expect(state.pairs.map((p) => p.target)).toEqual(['r1', 'c2']);
    expect(state.trainable).not.toContain('bn1.running_var');
    const b = batch(4);
    const expected = tf.tidy(() => {
      const c = state.backbone.apply(state.params, b.x, { taps: ['c1'] }).taps.c1 as tf.Tensor;
      const { variance } = tf.moments(c, [0, 1, 2]);
      const n = 12 * 64;
      return Array.from(tf.add(0.9, tf.mul(variance, (0.1 * n) / (n - 1))).dataSync());
    });
    state = (await attentionTransfer.trainStep(state, { target: b, step: 0 })).state;
    for (const [i, v] of Array.from(state.params['bn1.running_var']?.dataSync() ?? []).entries())
      expect(v).toBeCloseTo(expected[i] as number, 4);
    let step = 1;
    const growth = await measureTensorGrowthAsync(
      async () => {
        state = (await attentionTransfer.trainStep(state, { target: b, step: step++ })).state;
      },
      { warmup: 2, steps: 4 },
    );
    expect(growth.grew).toBe(false);
    await attentionTransfer.dispose(state);
    tf.dispose([b.x, b.y, ...Object.values(pretrained)]);
  });
});
