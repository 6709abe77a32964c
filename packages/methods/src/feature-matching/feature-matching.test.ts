import * as tf from '@tensorflow/tfjs-core';
import {
  createRng,
  initBackend,
  type Params,
  softmaxCrossEntropy,
  valueAndGrads,
} from '@transferlab/core';
import { cnnSpec, createBackbone } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { scratch } from '../scratch/index.js';
import { batchFromTensors } from '../shared/batch.js';
import { applyConnector, matchingLoss, resizeToTarget } from '../shared/feature-transfer.js';
import { measureTensorGrowthAsync } from '../shared/testing.js';
import type { AnyTransferMethod, Batch, MethodContext } from '../types.js';
import { featureMatching } from './index.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const source = createBackbone(cnnSpec([8, 8, 1], [4, 6], 8));

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

function context<C>(config: C, pretrained: Params, seed = 0): MethodContext<C> {
  return {
    config,
    backbone: source,
    numClasses: 3,
    pretrained,
    rng: createRng(seed),
    totalSteps: 30,
  };
}

async function run(method: AnyTransferMethod, options: Record<string, unknown>, steps: number) {
  const pretrained = source.init(createRng(100));
  let state = await method.init(context(method.validate(options), pretrained));
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const b = batch(step);
    const out = await method.trainStep(state, { target: b, step });
    state = out.state;
    losses.push(out.loss);
    tf.dispose([b.x, b.y]);
  }
  const live = await method.predictParams(state);
  const params = Object.fromEntries(
    Object.entries(live).map(([n, t]) => [n, Array.from(t.dataSync())]),
  );
  await method.dispose(state);
  tf.dispose(Object.values(pretrained));
  return { params, losses };
}

describe('feature-matching', () => {
  it('pairs: single (last source tap ↔ last target tap) by default; all; clear errors', async () => {
    const pretrained = source.init(createRng(1));
    const single = await featureMatching.init(context(featureMatching.validate({}), pretrained));
    expect(single.pairs.map((p) => `${p.source}->${p.target}`)).toEqual(['conv2->conv2']);
    await featureMatching.dispose(single);
    const all = await featureMatching.init(
      context(
        featureMatching.validate({ pairs: 'all', targetBackbone: 'cnn', targetChannels: [2, 3] }),
        pretrained,
      ),
    );
    expect(all.pairs).toHaveLength(4);
    expect(all.params['connector.3.weight']?.shape).toEqual([3, 6]);
    await featureMatching.dispose(all);
    expect(() =>
      featureMatching.init(
        context(featureMatching.validate({ sourceTaps: ['conv7'] }), pretrained),
      ),
    ).toThrow(/the source backbone "cnn-4-6-8" has no tap "conv7"/);
    expect(() => featureMatching.validate({ beta: -1 })).toThrow(/beta must be ≥ 0/);
    tf.dispose(Object.values(pretrained));
  });

  it('its loss is CE + β · mean over channels, pixels and examples of (source − connector(target))²', async () => {
    const pretrained = source.init(createRng(1));
    const state = await featureMatching.init(
      context(featureMatching.validate({ beta: 0.7, pairs: 'conv2:conv1' }), pretrained),
    );
    const b = batch(1);
    const expected = tf.tidy(() => {
      const p = state.params;
      const s = source.apply(pretrained, b.x, { taps: ['conv2'] }).taps.conv2 as tf.Tensor4D;
      const out = source.apply(p, b.x, { taps: ['conv1'] });
      const pair = state.pairs[0] as (typeof state.pairs)[number];
      // conv2 (4×4) is upsampled to conv1's 8×8.
      const sUp = tf.image.resizeBilinear(s, [8, 8], false, true);
      const match = tf.mean(
        tf.square(tf.sub(sUp, applyConnector(p, pair, out.taps.conv1 as tf.Tensor4D))),
      );
      const ce = softmaxCrossEntropy(state.head.apply(p, out.features), b.y);
      return (ce.dataSync()[0] as number) + 0.7 * (match.dataSync()[0] as number);
    });
    const out = await featureMatching.trainStep(state, { target: b, step: 0 });
    expect(out.loss).toBeCloseTo(expected, 4);
    await featureMatching.dispose(out.state);
    tf.dispose([b.x, b.y, ...Object.values(pretrained)]);
  });

  it('gradient sanity: the matching loss gradient agrees with finite differences', async () => {
    const pretrained = source.init(createRng(1));
    const state = await featureMatching.init(
      context(featureMatching.validate({ pairs: 'all' }), pretrained),
    );
    const b = batch(2);
    const f = (p: Params) => {
      const src = source.apply(pretrained, b.x, { taps: ['conv1', 'conv2'] }).taps;
      const tgt = source.apply(p, b.x, { taps: ['conv1', 'conv2'] }).taps;
      return matchingLoss({
        pairs: state.pairs,
        params: p,
        targetTaps: tgt,
        sourceMaps: state.pairs.map((pair) =>
          resizeToTarget(src[pair.source] as tf.Tensor4D, pair),
        ),
        weights: null,
        lambdas: null,
        beta: 0.5,
      });
    };
    const dir = Object.fromEntries(
      Object.entries(state.params).map(([n, t]) => [
        n,
        tf.tensor(createRng(n.length).normalArray(t.size), t.shape),
      ]),
    );
    const names = Object.keys(state.params).filter(
      (n) => !n.startsWith('head') && !n.startsWith('fc'),
    );
    const analytic = tf.tidy(() => {
      const { grads } = valueAndGrads(f, state.params, names);
      return names.reduce(
        (s, n) =>
          s + (tf.sum(tf.mul(grads[n] as tf.Tensor, dir[n] as tf.Tensor)).dataSync()[0] as number),
        0,
      );
    });
    const at = (h: number) =>
      tf.tidy(
        () =>
          f(
            Object.fromEntries(
              Object.entries(state.params).map(([n, t]) => [
                n,
                names.includes(n) ? tf.add(t, tf.mul(dir[n] as tf.Tensor, h)) : t,
              ]),
            ),
          ).dataSync()[0] as number,
      );
    const fd = (at(1e-3) - at(-1e-3)) / 2e-3;
    expect(Math.abs(analytic - fd) / Math.abs(fd)).toBeLessThan(1e-2);
    await featureMatching.dispose(state);
    tf.dispose([b.x, b.y, ...Object.values(dir), ...Object.values(pretrained)]);
  });

  it('β = 0 is training from scratch (same weights, same seed); loss falls; no leaks', async () => {
    const optim = {
      optimizer: 'sgd',
      lr: 0.05,
      momentum: 0.9,
      weightDecay: 1e-4,
      schedule: 'cosine',
    };
    const ref = await run(scratch, optim, 4);
    const fm = await run(featureMatching, { ...optim, beta: 0 }, 4);
    for (const [name, v] of Object.entries(ref.params)) expect(fm.params[name], name).toEqual(v);

    const pretrained = source.init(createRng(1));
    let state = await featureMatching.init(
      context(featureMatching.validate({ lr: 0.05, pairs: 'all' }), pretrained),
    );
    const b = batch(3);
    let step = 0;
    const losses: number[] = [];
    const growth = await measureTensorGrowthAsync(
      async () => {
        const out = await featureMatching.trainStep(state, { target: b, step: step++ });
        state = out.state;
        losses.push(out.loss);
      },
      { warmup: 2, steps: 15 },
    );
    expect(growth.grew).toBe(false);
    expect(losses[losses.length - 1]).toBeLessThan((losses[0] as number) * 0.8);
    await featureMatching.dispose(state);
    tf.dispose([b.x, b.y, ...Object.values(pretrained)]);
  });
});
