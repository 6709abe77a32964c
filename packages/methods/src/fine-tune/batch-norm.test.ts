import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, type Params } from '@transferlab/core';
import { attr, OnnxGraphBuilder } from '@transferlab/graph';
import { createBackbone, importOnnx, linearHead } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { joint } from '../joint/index.js';
import { linearProbe } from '../linear-probe/index.js';
import { lwf } from '../lwf/index.js';
import { merlin } from '../merlin/index.js';
import { scratch } from '../scratch/index.js';
import { batchFromTensors } from '../shared/batch.js';
import { measureTensorGrowthAsync } from '../shared/testing.js';
import type { AnyTransferMethod } from '../types.js';
import { fineTune } from './index.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const rng = createRng(42);
const randn = (n: number, std = 0.5) => Array.from(rng.normalArray(n, std));

/** A PyTorch-style NCHW backbone: Conv → BatchNormalization → Relu → GlobalAveragePool → Flatten. */
function importBnBackbone() {
  const g = new OnnxGraphBuilder('bn-backbone');
  g.input('x', ['N', 1, 6, 6]);
  g.initializer('W', randn(4 * 9), [4, 1, 3, 3]);
  g.initializer('B', randn(4), [4]);
  g.op(
    'Conv',
    ['x', 'W', 'B'],
    { kernel_shape: attr.ints([3, 3]), pads: attr.ints([1, 1, 1, 1]) },
    'c',
  );
  g.initializer('bn.scale', [1, 1.2, 0.8, 1.1], [4]);
  g.initializer('bn.bias', randn(4, 0.1), [4]);
  // Deliberately wrong running statistics, as if pretrained on other data.
  g.initializer('bn.mean', [2, -2, 1, 0], [4]);
  g.initializer('bn.var', [5, 0.2, 3, 1], [4]);
  g.op('BatchNormalization', ['c', 'bn.scale', 'bn.bias', 'bn.mean', 'bn.var'], {}, 'bn');
  const r = g.op('Relu', ['bn']);
  g.op('Flatten', [g.op('GlobalAveragePool', [r])], { axis: attr.int(1) }, 'features');
  g.output('features', ['N', 4]);
  const imported = importOnnx(g.toBytes({ opset: 13 }), { source: 'bn-backbone.onnx' });
  return { backbone: imported.backbone, params: imported.params };
}

function batch(n: number) {
  return batchFromTensors(
    tf.tensor(randn(n * 36, 1), [n, 1, 6, 6]),
    tf.tensor1d(
      Array.from({ length: n }, (_, i) => i % 3),
      'int32',
    ),
  );
}

const values = (t: tf.Tensor | undefined) => Array.from(t?.dataSync() ?? []);

/** `method` initialised on the imported BN backbone (3 target and 3 source classes; LwF distils the source head). */
async function initOnBnBackbone(method: AnyTransferMethod, options: Record<string, unknown>) {
  const { backbone, params } = importBnBackbone();
  const sourceHead = linearHead(4, 3, 'source_head').init(createRng(7));
  const config = method.validate({ epochs: 1, batchSize: 8, ...options });
  const state = await method.init({
    config,
    backbone,
    numClasses: 3,
    pretrained: params,
    sourceHead,
    sourceNumClasses: 3,
    rng: createRng(1),
    totalSteps: 10,
  });
  return { state, sourceHead };
}

describe('fine-tuning a backbone with BatchNormalization', () => {
  it('trains in training mode: running statistics follow the batches, never the optimizer; no leaks', async () => {
    const { backbone, params } = importBnBackbone();
    const config = fineTune.validate({ epochs: 1, batchSize: 8, backboneLrMultiplier: 0.1 });
    let state = await fineTune.init({
      config,
      backbone,
      numClasses: 3,
      pretrained: params,
      rng: createRng(1),
      totalSteps: 10,
    });
    expect(state.trainer.trainable).not.toContain('bn.mean');
    expect(state.trainer.trainable).not.toContain('bn.var');
    expect(state.trainer.trainable).toContain('W');
    const b = batch(8);
    // What one step must write: the moving averages training mode reports for the pre-step weights.
    const expected = tf.tidy(() => {
      const s = backbone.apply(state.trainer.params(), b.x, { training: true }).statistics ?? {};
      return { mean: values(s['bn.mean']), variance: values(s['bn.var']) };
    });
    state = (await fineTune.trainStep(state, { target: b, step: 0 })).state;
    const mean = values(state.trainer.params()['bn.mean']);
    const variance = values(state.trainer.params()['bn.var']);
    for (const [i, v] of mean.entries()) expect(v).toBeCloseTo(expected.mean[i] as number, 5);
    for (const [i, v] of variance.entries())
      expect(v).toBeCloseTo(expected.variance[i] as number, 5);
    expect(mean).not.toEqual([2, -2, 1, 0]);
    // Repeated steps on one batch: the running mean converges to the batch mean (momentum 0.9).
    let step = 1;
    const growth = await measureTensorGrowthAsync(
      async () => {
        state = (await fineTune.trainStep(state, { target: b, step: step++ })).state;
      },
      { warmup: 2, steps: 5 },
    );
    expect(growth.grew).toBe(false);
    for (let i = 0; i < 40; i++)
      state = (await fineTune.trainStep(state, { target: b, step: step++ })).state;
    const batchMean = tf.tidy(() => {
      const c = backbone.apply(state.trainer.params(), b.x, { taps: ['c'] }).taps.c as tf.Tensor;
      return values(tf.moments(c, [0, 2, 3]).mean);
    });
    expect(batchMean).toHaveLength(4);
    // 0.9^47 ≈ 0.7% of the initial error (up to 2) remains, plus the slow drift of the weights.
    for (const [i, v] of values(state.trainer.params()['bn.mean']).entries())
      expect(Math.abs(v - (batchMean[i] as number))).toBeLessThan(0.1);
    await fineTune.dispose(state);
    tf.dispose([b.x, b.y]);
  });

  it('a network with a native batchNorm layer trains the same way (scratch): statistics from the batch, γ from the optimizer', async () => {
    const backbone = createBackbone({
      name: 'conv-bn',
      inputShape: [6, 6, 1],
      layers: [
        { kind: 'conv2d', name: 'c', filters: 4, kernelSize: 3 },
        { kind: 'batchNorm', name: 'bn' },
        { kind: 'relu', name: 'r' },
        { kind: 'globalAvgPool', name: 'gap' },
      ],
    });
    const b = batch(8);
    const x = tf.reshape(b.x, [8, 6, 6, 1]);
    const nhwc = batchFromTensors(x, b.y);
    const config = scratch.validate({ epochs: 1, batchSize: 8 });
    let state = await scratch.init({
      config,
      backbone,
      numClasses: 3,
      rng: createRng(2),
      totalSteps: 10,
    });
    expect(state.trainer.trainable).toContain('bn.gamma');
    expect(state.trainer.trainable).not.toContain('bn.running_mean');
    expect(state.trainer.trainable).not.toContain('bn.running_var');
    const expected = tf.tidy(() => {
      const c = backbone.apply(state.trainer.params(), x, { taps: ['c'] }).taps.c as tf.Tensor;
      const { mean, variance } = tf.moments(c, [0, 1, 2]);
      const n = 8 * 36;
      // PyTorch's momentum 0.1 from the initial statistics (0 and 1), unbiased variance.
      return {
        mean: values(tf.mul(mean, 0.1)),
        variance: values(tf.add(0.9, tf.mul(variance, (0.1 * n) / (n - 1)))),
      };
    });
    const gammaBefore = values(state.trainer.params()['bn.gamma']);
    state = (await scratch.trainStep(state, { target: nhwc, step: 0 })).state;
    for (const [i, v] of values(state.trainer.params()['bn.running_mean']).entries())
      expect(v).toBeCloseTo(expected.mean[i] as number, 5);
    for (const [i, v] of values(state.trainer.params()['bn.running_var']).entries())
      expect(v).toBeCloseTo(expected.variance[i] as number, 4);
    expect(values(state.trainer.params()['bn.gamma'])).not.toEqual(gammaBefore);
    let step = 1;
    const growth = await measureTensorGrowthAsync(
      async () => {
        state = (await scratch.trainStep(state, { target: nhwc, step: step++ })).state;
      },
      { warmup: 2, steps: 5 },
    );
    expect(growth.grew).toBe(false);
    await scratch.dispose(state);
    tf.dispose([b.x, b.y, x]);
  });

  it('LwF, joint and MeRLin also train with batch statistics, chained pass to pass within a step; no leaks', async () => {
    const sourceBatch = batch(8);
    const targetBatch = batch(8);
    // Conv-output batch means per channel at the given weights.
    const convMean = (p: Params, x: tf.Tensor) =>
      tf.tidy(() => {
        const { backbone } = importBnBackbone();
        const c = backbone.apply(p, x, { taps: ['c'] }).taps.c as tf.Tensor;
        return values(tf.moments(c, [0, 2, 3]).mean);
      });
    const m0 = [2, -2, 1, 0];
    const cases: [AnyTransferMethod, Record<string, unknown>, (p: Params) => number[]][] = [
      // One pass on the target batch: 0.9·m0 + 0.1·μ_target (ONNX momentum 0.9).
      [
        lwf,
        {},
        (p) => convMean(p, targetBatch.x).map((mu, i) => 0.9 * (m0[i] as number) + 0.1 * mu),
      ],
      // Joint: the source pass, then the target pass, chained.
      [
        joint,
        {},
        (p) => {
          const src = convMean(p, sourceBatch.x);
          const tgt = convMean(p, targetBatch.x);
          return tgt.map(
            (mu, i) => 0.9 * (0.9 * (m0[i] as number) + 0.1 * (src[i] as number)) + 0.1 * mu,
          );
        },
      ],
      // MeRLin without the source loss: one pass over both halves.
      [
        merlin,
        {},
        (p) => convMean(p, targetBatch.x).map((mu, i) => 0.9 * (m0[i] as number) + 0.1 * mu),
      ],
    ];
    for (const [method, options, expectedMean] of cases) {
      const init = await initOnBnBackbone(method, { backboneLrMultiplier: 0.1, ...options });
      let state = init.state;
      const { sourceHead } = init;
      const input = (step: number) => ({ target: targetBatch, source: sourceBatch, step });
      const want = expectedMean(await method.predictParams(state));
      state = (await method.trainStep(state, input(0))).state;
      const got = values((await method.predictParams(state))['bn.mean']);
      for (const [i, v] of got.entries()) expect(v, method.id).toBeCloseTo(want[i] as number, 4);
      let step = 1;
      const growth = await measureTensorGrowthAsync(
        async () => {
          state = (await method.trainStep(state, input(step++))).state;
        },
        { warmup: 2, steps: 4 },
      );
      expect(growth.grew, method.id).toBe(false);
      await method.dispose(state);
      tf.dispose(Object.values(sourceHead));
    }
    tf.dispose([sourceBatch.x, sourceBatch.y, targetBatch.x, targetBatch.y]);
  });

  it('freezeBatchNorm keeps the pretrained statistics; a linear probe or a frozen backbone never touches them', async () => {
    const cases: [AnyTransferMethod, Record<string, unknown>][] = [
      [fineTune, { freezeBatchNorm: true, backboneLrMultiplier: 0.1 }],
      [linearProbe, {}],
      [lwf, { backboneLrMultiplier: 0 }],
      [joint, { backboneLrMultiplier: 0 }],
    ];
    for (const [method, options] of cases) {
      const init = await initOnBnBackbone(method, options);
      let state = init.state;
      const { sourceHead } = init;
      const b = batch(8);
      const before: Params = { W: tf.clone((await method.predictParams(state)).W as tf.Tensor) };
      for (let i = 0; i < 3; i++)
        state = (await method.trainStep(state, { target: b, source: b, step: i })).state;
      const p = await method.predictParams(state);
      expect(values(p['bn.mean'])).toEqual([2, -2, 1, 0]);
      expect(values(p['bn.var'])).toEqual([5, 0.2, 3, 1].map((v) => Math.fround(v)));
      const moved = values(p.W).some((v, i) => v !== values(before.W)[i]);
      expect(moved).toBe(method === fineTune);
      await method.dispose(state);
      tf.dispose([b.x, b.y, before.W as tf.Tensor, ...Object.values(sourceHead)]);
    }
    expect(() => fineTune.validate({ freezeBatchNorm: 'yes' })).toThrow(
      'method "fine-tune": option "freezeBatchNorm" must be a boolean, got "yes"',
    );
  });
});
