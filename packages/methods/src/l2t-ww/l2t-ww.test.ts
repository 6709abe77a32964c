import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend, type Params } from '@transferlab/core';
import {
  type Backbone,
  cnnSpec,
  createBackbone,
  exportBackboneToOnnx,
  importOnnx,
  linearHead,
  mlpSpec,
  resnetSpec,
} from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { scratch } from '../scratch/index.js';
import { batchFromTensors } from '../shared/batch.js';
import { measureTensorGrowthAsync } from '../shared/testing.js';
import type { AnyTransferMethod, Batch, MethodContext } from '../types.js';
import { type L2tWwConfig, type L2tWwState, l2tWw, l2twwMetrics, l2twwSummary } from './index.js';
import { lookaheadParamNames } from './lookahead.js';
import { sourceInputs } from './step.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const source = createBackbone(cnnSpec([8, 8, 1], [4, 6], 8));
const CLASSES = 3;

/** Class-dependent bright quadrant: learnable by a tiny CNN. */
function batch(seed: number, n = 12): Batch {
  const rng = createRng(seed);
  const y = Int32Array.from({ length: n }, (_, i) => i % CLASSES);
  const x = new Float32Array(n * 64);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < 64; p++) {
      const quadrant = (p % 8 < 4 ? 0 : 1) + (p < 32 ? 0 : 1);
      x[i * 64 + p] = 0.3 * rng.normal() + (quadrant === y[i] ? 1 : 0);
    }
  }
  return batchFromTensors(tf.tensor4d(x, [n, 8, 8, 1]), tf.tensor1d(y, 'int32'));
}
const disposeBatch = (b: Batch) => tf.dispose([b.x, b.y]);

function context<C>(config: C, seed = 0, pretrained?: Params): MethodContext<C> {
  return {
    config,
    backbone: source,
    numClasses: CLASSES,
    ...(pretrained ? { pretrained } : {}),
    rng: createRng(seed),
    totalSteps: 40,
  };
}

const values = (p: Params) =>
  Object.fromEntries(Object.entries(p).map(([n, t]) => [n, Array.from(t.dataSync())]));

async function run(
  method: AnyTransferMethod,
  options: Record<string, unknown>,
  steps: number,
  seed = 0,
): Promise<{ params: Record<string, number[]>; losses: number[]; state?: unknown }> {
  const pretrained = source.init(createRng(100));
  let state = await method.init(context(method.validate(options), seed, pretrained));
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const b = batch(50 + step);
    const out = await method.trainStep(state, { target: b, step });
    state = out.state;
    losses.push(out.loss);
    disposeBatch(b);
  }
  const params = values(await method.predictParams(state));
  await method.dispose(state);
  tf.dispose(Object.values(pretrained));
  return { params, losses };
}

describe('l2t-ww', () => {
  it('validate: defaults from the reference code, clear errors', async () => {
    const c = l2tWw.validate({});
    expect(c).toMatchObject({
      optimizer: 'sgd',
      lr: 0.1,
      momentum: 0.9,
      weightDecay: 1e-4,
      schedule: 'cosine',
      batchSize: 64,
      beta: 0.5,
      lookaheadSteps: 2,
      metaLr: 1e-4,
      metaWeightDecay: 1e-4,
      whereActivation: 'relu6',
      whereBiasInit: 1,
      pairs: 'all',
      metaGradient: 'exact',
      targetBackbone: 'same',
    });
    expect(() => l2tWw.validate({ T: 2 })).toThrow(/unknown option "T"/);
    expect(() => l2tWw.validate({ metaGradient: 'second' })).toThrow(
      /metaGradient must be one of exact, first-order/,
    );
    expect(() => l2tWw.validate({ optimizer: 'adam' })).toThrow(/optimizer must be 'sgd'/);
    expect(() => l2tWw.validate({ lookaheadSteps: 1.5 })).toThrow(
      /lookaheadSteps must be an integer ≥ 1/,
    );
    expect(() => l2tWw.validate({ whereActivation: 'tanh' })).toThrow(
      /whereActivation must be one of/,
    );
    expect(() => l2tWw.validate({ targetBackbone: 'spec' })).toThrow(/needs targetSpec/);
    expect(() => l2tWw.validate({ targetChannels: [4, 0] })).toThrow(/targetChannels must be/);
  });

  it('init: clear errors for missing pretrained weights, unknown taps and pairs that cannot be matched', async () => {
    const pretrained = source.init(createRng(1));
    const init = (options: Record<string, unknown>) => () =>
      l2tWw.init(context(l2tWw.validate(options), 0, pretrained));
    await expect(l2tWw.init(context(l2tWw.validate({}), 0))).rejects.toThrow(
      /needs the source-pretrained backbone/,
    );
    await expect(init({ sourceTaps: ['block3'] })()).rejects.toThrow(
      /the source backbone "cnn-4-6-8" has no tap "block3". Available taps: conv1, pool1, conv2, pool2, flatten, fc/,
    );
    await expect(init({ targetBackbone: 'cnn', targetTaps: ['conv9'] })()).rejects.toThrow(
      /the target backbone "cnn-16-32-128" has no tap "conv9"/,
    );
    await expect(init({ sourceTaps: ['conv2'], targetTaps: ['fc'] })()).rejects.toThrow(
      /cannot match source tap "conv2" of shape \[4,4,6\] with target tap "fc" of shape \[8\]: both must be feature maps \[H, W, C\] or both vectors \[C\]/,
    );
    await expect(init({ pairs: 'one-to-one', targetTaps: ['conv1'] })()).rejects.toThrow(
      /pairs 'one-to-one' needs as many source taps as target taps, got 2 \(conv1, conv2\) and 1 \(conv1\)/,
    );
    // a malformed spec is refused by validate, before any pre-training
    expect(() => l2tWw.validate({ pairs: 'conv1-conv2' })).toThrow(
      /pairs must be 'all', 'one-to-one', 'single' or a list/,
    );
    await expect(init({ pairs: 'conv1:nope' })()).rejects.toThrow(
      /target backbone .* has no tap "nope"/,
    );
    await expect(init({ targetBackbone: 'resnet9000' })()).rejects.toThrow(
      /unknown targetBackbone "resnet9000". Valid: same, cnn, mlp, spec/,
    );
    const mlpSource = createBackbone(mlpSpec([8, 8, 1], [16]));
    const mlpWeights = mlpSource.init(createRng(1));
    // An MLP source has vectors, a CNN target maps: no default pair fits.
    await expect(
      l2tWw.init({
        ...context(l2tWw.validate({ targetBackbone: 'cnn' }), 0, mlpWeights),
        backbone: mlpSource,
      }),
    ).rejects.toThrow(
      /cannot match source tap "fc1" of shape \[16\] with target tap "conv1" of shape \[8,8,16\]/,
    );
    // Vector taps match vector taps (MLP → MLP).
    const ok = await l2tWw.init({
      ...context(l2tWw.validate({}), 0, mlpWeights),
      backbone: mlpSource,
    });
    expect(ok.pairs.map((p) => p.sourceShape)).toEqual([[1, 1, 16]]);
    await l2tWw.dispose(ok);
    tf.dispose(Object.values(mlpWeights));
    tf.dispose(Object.values(pretrained));
  });

  it('pairs: all = source taps × target taps, with the shapes of both and resizing when sizes differ', async () => {
    const pretrained = source.init(createRng(1));
    const state = await l2tWw.init(
      context(
        l2tWw.validate({ targetBackbone: 'cnn', targetChannels: [3, 5], targetDenseUnits: 6 }),
        0,
        pretrained,
      ),
    );
    expect(state.pairs.map((p) => `${p.source}->${p.target}`)).toEqual([
      'conv1->conv1',
      'conv1->conv2',
      'conv2->conv1',
      'conv2->conv2',
    ]);
    expect(state.pairs[1]?.targetShape).toEqual([4, 4, 5]);
    expect(state.params['connector.1.weight']?.shape).toEqual([5, 4]);
    expect(state.meta['what.2.weight']?.shape).toEqual([6, 6]);
    const b = batch(1);
    const out = await l2tWw.trainStep(state, { target: b, step: 0 });
    expect(Number.isFinite(out.loss)).toBe(true);
    const logits = l2tWw.predict(out.state, out.state.params, b.x);
    expect(logits.shape).toEqual([12, CLASSES]);
    logits.dispose();
    await l2tWw.dispose(out.state);
    disposeBatch(b);
    tf.dispose(Object.values(pretrained));
  });

  it('with β = 0 it is training from scratch: the same weights after k steps, same seed', async () => {
    const optim = {
      optimizer: 'sgd',
      lr: 0.05,
      momentum: 0.9,
      weightDecay: 1e-4,
      schedule: 'cosine',
    };
    const k = 4;
    const ref = await run(scratch, optim, k);
    const l2t = await run(l2tWw, { ...optim, beta: 0, metaLr: 1e-2 }, k);
    for (const [name, v] of Object.entries(ref.params)) {
      expect(l2t.params[name], name).toEqual(v);
    }
    expect(l2t.losses).toEqual(ref.losses);
    // And β > 0 does move the target elsewhere.
    const on = await run(l2tWw, { ...optim, beta: 0.5 }, k);
    expect(on.params['conv1.weight']).not.toEqual(ref.params['conv1.weight']);
  });

  it('no tensor leaks across meta-steps; dispose frees everything it owns', async () => {
    const pretrained = source.init(createRng(1));
    const before = tf.memory().numTensors;
    let state = await l2tWw.init(context(l2tWw.validate({ lr: 0.05 }), 0, pretrained));
    const b = batch(2);
    let step = 0;
    const growth = await measureTensorGrowthAsync(
      async () => {
        state = (await l2tWw.trainStep(state, { target: b, step: step++ })).state;
      },
      { warmup: 2, steps: 5 },
    );
    expect(growth.counts).toEqual(growth.counts.map(() => growth.counts[0]));
    await l2tWw.dispose(state);
    disposeBatch(b);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(pretrained));
  });

  it('a failing step leaves the old state intact and leaks nothing', async () => {
    const pretrained = source.init(createRng(1));
    let state = await l2tWw.init(context(l2tWw.validate({ lr: 0.05 }), 0, pretrained));
    const b = batch(3);
    state = (await l2tWw.trainStep(state, { target: b, step: 0 })).state;
    const count = tf.memory().numTensors;
    const bad = batchFromTensors(tf.fill([12, 8, 8, 1], Number.NaN), b.y);
    expect(() => l2tWw.trainStep(state, { target: bad, step: 1 })).toThrow(/diverged/);
    bad.x.dispose();
    expect(tf.memory().numTensors).toBe(count);
    expect(Number.isFinite((await l2tWw.trainStep(state, { target: b, step: 1 })).loss)).toBe(true);
    disposeBatch(b);
    tf.dispose(Object.values(pretrained));
  });

  it('learns: the meta-nets move, λ and channel-weight entropy are recorded per pair', async () => {
    const pretrained = source.init(createRng(1));
    const config: L2tWwConfig = l2tWw.validate({ lr: 0.05, metaLr: 0.05 });
    let state: L2tWwState = await l2tWw.init(context(config, 0, pretrained));
    const fresh = l2twwSummary(state);
    expect(fresh.steps).toBe(0);
    const what0 = Array.from(state.meta['what.0.weight']?.dataSync() ?? []);
    expect(what0.every((v) => v === 0)).toBe(true);
    const losses: number[] = [];
    for (let step = 0; step < 12; step++) {
      const b = batch(step % 3);
      const out = await l2tWw.trainStep(state, { target: b, step });
      state = out.state;
      losses.push(out.loss);
      disposeBatch(b);
    }
    const summary = l2twwSummary(state);
    expect(summary.steps).toBe(12);
    expect(summary.metaGradient).toBe('exact');
    expect(Number.isFinite(summary.lastMetaLoss)).toBe(true);
    expect(summary.pairs.map((p) => [p.source, p.target])).toEqual([
      ['conv1', 'conv1'],
      ['conv1', 'conv2'],
      ['conv2', 'conv1'],
      ['conv2', 'conv2'],
    ]);
    for (const p of summary.pairs) {
      expect(p.lambdaMean).toBeGreaterThanOrEqual(0);
      expect(p.lambdaMean).toBeLessThanOrEqual(6);
      expect(p.channelEntropy).toBeGreaterThan(0);
      expect(p.channelEntropy).toBeLessThanOrEqual(1 + 1e-6);
      expect(Number.isFinite(p.lambdaMeanOverTraining)).toBe(true);
    }
    // The what-nets left their zero start: channel weights are no longer uniform.
    expect(state.meta['what.0.weight']?.dataSync().some((v) => v !== 0)).toBe(true);
    expect(Math.min(...summary.pairs.map((p) => p.channelEntropy))).toBeLessThan(1 - 1e-7);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] as number);
    expect(Object.keys(l2twwMetrics(state))).toContain('l2t_lambda:conv1->conv2');
    await l2tWw.dispose(state);
    tf.dispose(Object.values(pretrained));
  });

  it('learnWhat / learnWhere off: no meta-networks, and no meta-step', async () => {
    const pretrained = source.init(createRng(1));
    const state = await l2tWw.init(
      context(l2tWw.validate({ learnWhat: false, learnWhere: false }), 0, pretrained),
    );
    expect(Object.keys(state.meta)).toEqual([]);
    const b = batch(1);
    const out = await l2tWw.trainStep(state, { target: b, step: 0 });
    expect(Number.isNaN(out.state.lastMetaLoss)).toBe(true);
    expect(l2twwSummary(out.state).pairs[0]).toMatchObject({ lambdaMean: 1, channelEntropy: 1 });
    await l2tWw.dispose(out.state);
    disposeBatch(b);
    tf.dispose(Object.values(pretrained));
  });
});

describe('an imported ONNX model as the source network', () => {
  it('gives the same training as the native source; needs explicit taps, and cannot be the target', async () => {
    const pretrained = source.init(createRng(100));
    const bytes = exportBackboneToOnnx(source, pretrained, {
      outputs: ['features', 'conv1', 'conv2'],
    });
    const imported = importOnnx(bytes, { source: 'cnn.onnx', taps: ['conv1', 'conv2'] });
    const options = l2tWw.validate({
      targetBackbone: 'cnn',
      targetChannels: [4, 6],
      targetDenseUnits: 8,
      sourceTaps: ['conv1', 'conv2'],
    });
    const losses = async (backbone: Backbone, weights: Params) => {
      let state = await l2tWw.init({ ...context(options, 0, weights), backbone });
      const out: number[] = [];
      for (let step = 0; step < 3; step++) {
        const b = batch(50 + step);
        const r = await l2tWw.trainStep(state, { target: b, step });
        state = r.state;
        out.push(r.loss);
        disposeBatch(b);
      }
      await l2tWw.dispose(state);
      return out;
    };
    const native = await losses(source, pretrained);
    const viaOnnx = await losses(imported.backbone, imported.params);
    for (const [i, l] of viaOnnx.entries()) expect(l).toBeCloseTo(native[i] as number, 4);
    // Default taps come from the layer description, which an import lacks.
    await expect(
      l2tWw.init({
        ...context(l2tWw.validate({ targetBackbone: 'cnn' }), 0, imported.params),
        backbone: imported.backbone,
      }),
    ).rejects.toThrow(
      /source backbone "cnn-4-6-8" has no conv or dense layer to tap that can be found without a layer description; name sourceTaps explicitly/,
    );
    await expect(
      l2tWw.init({
        ...context(l2tWw.validate({ sourceTaps: ['conv1'] }), 0, imported.params),
        backbone: imported.backbone,
      }),
    ).rejects.toThrow(
      /targetBackbone 'same' .* needs a backbone built from LayerSpecs; "cnn-4-6-8" has no layer description/,
    );
    expect(() => exportBackboneToOnnx(imported.backbone, imported.params)).toThrow(
      /exportBackboneToOnnx needs a backbone built from LayerSpecs/,
    );
    tf.dispose([...Object.values(pretrained), ...Object.values(imported.params)]);
  });
});

describe('l2t-ww with a batch-normalised ResNet source', () => {
  it('taps each stage after its normalisation and ReLU, runs the source in inference mode and trains a plain target', async () => {
    const resnet = createBackbone(resnetSpec([8, 8, 1], [4, 6], 1, { batchNorm: true }));
    const pretrained: Record<string, tf.Tensor> = { ...resnet.init(createRng(3)) };
    // Pretrained-looking statistics: inference mode must use them.
    pretrained['stem_bn.running_var']?.dispose();
    pretrained['stem_bn.running_var'] = tf.fill([4], 4);
    const config = l2tWw.validate({
      targetBackbone: 'cnn',
      targetChannels: [3, 5],
      targetDenseUnits: 6,
      pairs: 'all',
    });
    let state = await l2tWw.init({ ...context(config, 0, pretrained), backbone: resnet });
    expect([...new Set(state.pairs.map((p) => p.source))]).toEqual([
      'stem',
      'block1_1',
      'block2_1',
    ]);
    const b = batch(5);
    // What the meta-nets see of the source: its inference-mode maps (stored statistics).
    tf.tidy(() => {
      const pooled = sourceInputs(state.source, state.pairs, b.x).pooled.stem as tf.Tensor;
      const mapAt = (training: boolean) =>
        tf.mean(
          resnet.apply(pretrained, b.x, { taps: ['stem'], training }).taps.stem as tf.Tensor,
          [1, 2],
        );
      const gap = (t: tf.Tensor) => tf.max(tf.abs(tf.sub(pooled, t))).dataSync()[0] as number;
      expect(gap(mapAt(false))).toBeLessThan(1e-6);
      expect(gap(mapAt(true))).toBeGreaterThan(1e-2);
    });
    const out = await l2tWw.trainStep(state, { target: b, step: 0 });
    state = out.state;
    expect(Number.isFinite(out.loss)).toBe(true);
    await l2tWw.dispose(state);
    disposeBatch(b);
    for (const t of Object.values(pretrained)) t.dispose();
  });
});

describe('l2t-ww with a batch-normalised target', () => {
  it('trains it in training mode: statistics from the real step, γ and β through the look-ahead; no leaks', async () => {
    const targetSpec = {
      name: 'cnn-bn',
      inputShape: [8, 8, 1],
      layers: [
        { kind: 'conv2d', name: 'c1', filters: 4, kernelSize: 3 },
        { kind: 'batchNorm', name: 'bn1' },
        { kind: 'relu', name: 'r1' },
        { kind: 'maxPool', name: 'p1', size: 2 },
        { kind: 'flatten', name: 'flat' },
        { kind: 'dense', name: 'fc', units: 6, activation: 'relu' },
      ],
    } as const;
    const pretrained = source.init(createRng(1));
    const config = l2tWw.validate({ targetBackbone: 'spec', targetSpec, metaLr: 0.05 });
    let state = await l2tWw.init(context(config, 0, pretrained));
    expect(state.pairs.map((p) => p.target)).toContain('r1');
    expect(state.trainable).toContain('bn1.gamma');
    expect(state.trainable).not.toContain('bn1.running_mean');
    // The look-ahead reaches the normalisation's γ/β (they own a layer before the deepest tap), never its statistics.
    const names = lookaheadParamNames(state.backbone, state.head, state.pairs);
    expect(names.matching).toContain('bn1.gamma');
    expect(names.matching).not.toContain('bn1.running_var');
    const b = batch(3);
    const expectedMean = tf.tidy(() => {
      const c = state.backbone.apply(state.params, b.x, { taps: ['c1'] }).taps.c1 as tf.Tensor;
      return Array.from(tf.mul(tf.moments(c, [0, 1, 2]).mean, 0.1).dataSync());
    });
    const metaBefore = values(state.meta);
    state = (await l2tWw.trainStep(state, { target: b, step: 0 })).state;
    for (const [i, v] of Array.from(state.params['bn1.running_mean']?.dataSync() ?? []).entries())
      expect(v).toBeCloseTo(expectedMean[i] as number, 5);
    expect(values(state.meta)).not.toEqual(metaBefore);
    let step = 1;
    const growth = await measureTensorGrowthAsync(
      async () => {
        state = (await l2tWw.trainStep(state, { target: b, step: step++ })).state;
      },
      { warmup: 1, steps: 3 },
    );
    expect(growth.grew).toBe(false);
    await l2tWw.dispose(state);
    disposeBatch(b);
    for (const t of Object.values(pretrained)) t.dispose();
  });

  it('the look-ahead reaches the parameters inside residual blocks (owned by the block, not by a layer of their prefix)', async () => {
    const target = createBackbone(resnetSpec([8, 8, 1], [4, 6], 1, { batchNorm: true }));
    const head = linearHead(target.featureDim, 3, 'head');
    const pair = {
      index: 0,
      source: 'conv1',
      target: 'block1_1',
      sourceShape: [8, 8, 4],
      targetShape: [8, 8, 4],
    } as const;
    const names = lookaheadParamNames(target, head, [pair]);
    expect(names.deepestTap).toBe('block1_1');
    expect(names.matching).toEqual(
      expect.arrayContaining([
        'stem_conv.weight',
        'stem_bn.gamma',
        'block1_1.conv1.weight',
        'block1_1.bn2.beta',
      ]),
    );
    expect(names.matching).not.toContain('block2_1.conv1.weight');
    expect(names.matching.some((n) => n.includes('running'))).toBe(false);
    expect(names.crossEntropy).toContain('block2_1.proj_bn.gamma');
  });
});
