import * as tf from '@tensorflow/tfjs-core';
import {
  createRng,
  disposeParams,
  initBackend,
  mergeParams,
  type Params,
  sgd,
  softmaxCrossEntropy,
  trainStep,
} from '@transferlab/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backbone, type BackboneSpec, createBackbone } from '../backbone.js';
import { linearHead } from '../head.js';
import { createBackboneRegistry } from '../registry.js';
import { exportBackboneToOnnx } from './export.js';
import { importOnnx } from './import.js';
import { createOnnxRuntimeExtractor } from './runtime.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const registry = createBackboneRegistry();

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

function relDiff(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i] as number));
  return maxAbsDiff(a, ref) / Math.max(scale, 1e-12);
}

const values = (t: tf.Tensor | undefined): Float32Array => {
  if (!t) throw new Error('missing tensor');
  return t.dataSync() as Float32Array;
};

/** The largest measured differences, printed at the end for the record. */
const measured: Record<string, number> = {};

afterAll(() => {
  console.log(`ONNX round-trip max diffs: ${JSON.stringify(measured)}`);
});

interface Case {
  id: string;
  backbone: Backbone;
  taps: string[];
}

const stridedSpec: BackboneSpec = {
  name: 'strided-conv',
  inputShape: [14, 14, 3],
  layers: [
    // 14 → 6 ('valid', stride 2)
    {
      kind: 'conv2d',
      name: 'c1',
      filters: 8,
      kernelSize: 3,
      stride: 2,
      padding: 'valid',
      activation: 'relu',
    },
    // 6 → 3 ('same', stride 2, 5×5: pads 1 before, 2 after — asymmetric)
    { kind: 'conv2d', name: 'c2', filters: 8, kernelSize: 5, stride: 2, padding: 'same' },
    { kind: 'relu', name: 'r2' },
    { kind: 'maxPool', name: 'p2', size: 2, stride: 1 },
    { kind: 'conv2d', name: 'c3', filters: 6, kernelSize: 1 },
    { kind: 'globalAvgPool', name: 'gap' },
    { kind: 'dense', name: 'fc', units: 5 },
  ],
};

const spatialSpec: BackboneSpec = {
  name: 'spatial-features',
  inputShape: [9, 7, 2],
  layers: [
    { kind: 'conv2d', name: 'c1', filters: 4, kernelSize: 3, stride: 2, activation: 'relu' },
    { kind: 'maxPool', name: 'p1', size: 2 },
  ],
};

/** Batch normalisation on flat features (ONNX channel axis 1 = the feature axis). */
const denseBnSpec: BackboneSpec = {
  name: 'dense-bn',
  inputShape: [6],
  layers: [
    { kind: 'flatten', name: 'flatten' },
    { kind: 'dense', name: 'fc1', units: 8 },
    { kind: 'batchNorm', name: 'bn1', momentum: 0.2, epsilon: 1e-3 },
    { kind: 'relu', name: 'r1' },
    { kind: 'dense', name: 'fc2', units: 4 },
  ],
};

const cases: Case[] = [
  {
    id: 'mlp',
    backbone: registry.get('mlp').create([28, 28, 1]),
    taps: ['flatten', 'fc1'],
  },
  {
    id: 'cnn',
    backbone: registry.get('cnn').create([28, 28, 1]),
    taps: ['conv1', 'pool1', 'conv2', 'pool2', 'flatten'],
  },
  {
    // Odd sizes: the stride-2 blocks pad asymmetrically (13 → 7 → 4).
    id: 'resnet',
    backbone: registry.get('resnet').create([13, 13, 2]),
    taps: ['stem', 'block1_1', 'block2_1', 'block3_1'],
  },
  {
    id: 'resnet-bn',
    backbone: registry.get('resnet-bn').create([13, 13, 2]),
    taps: ['stem', 'block1_1', 'block2_1', 'block3_1'],
  },
  { id: 'dense-bn', backbone: createBackbone(denseBnSpec), taps: ['bn1', 'r1'] },
  { id: 'strided', backbone: createBackbone(stridedSpec), taps: ['c1', 'c2', 'r2', 'p2', 'gap'] },
  { id: 'spatial', backbone: createBackbone(spatialSpec), taps: ['c1'] },
];

describe.each(cases)('export → import round trip: $id', ({ id, backbone, taps }) => {
  const n = 5;
  let params: Params;
  let x: tf.Tensor;
  let bytes: Uint8Array;
  beforeAll(() => {
    params = backbone.init(createRng(11));
    // Non-zero biases and non-trivial normalisation statistics, so a mix-up cannot hide.
    const noise = (k: string, v: tf.Tensor, scale: number) =>
      tf.tensor(createRng(k.length).normalArray(v.size, scale), v.shape);
    params = Object.fromEntries(
      Object.entries(params).map(([k, v]) => [
        k,
        k.endsWith('.bias') || k.endsWith('.beta') || k.endsWith('.running_mean')
          ? tf.add(v, noise(k, v, 0.1))
          : k.endsWith('.gamma')
            ? tf.add(v, noise(k, v, 0.2))
            : k.endsWith('.running_var')
              ? tf.add(v, tf.abs(noise(k, v, 0.5)))
              : v,
      ]),
    );
    const size = backbone.inputShape.reduce((a, b) => a * b, 1);
    x = tf.tensor(createRng(12).normalArray(n * size), [n, ...backbone.inputShape]);
    bytes = exportBackboneToOnnx(backbone, params, { outputs: ['features', ...taps] });
  });

  it('the imported model gives the tfjs backbone’s features and taps (≤ 1e-4)', () => {
    const { backbone: imported, params: ip } = importOnnx(bytes, {
      source: `${id}.onnx`,
      taps,
    });
    expect(imported.inputShape).toEqual(backbone.inputShape);
    expect(imported.featureShape).toEqual(backbone.featureShape);
    for (const t of taps) expect(imported.tapShapes[t], t).toEqual(backbone.tapShapes[t]);
    tf.tidy(() => {
      const want = backbone.apply(params, x, { taps });
      const got = imported.apply(ip, x, { taps });
      expect(got.features.shape).toEqual(want.features.shape);
      let worst = maxAbsDiff(values(got.features), values(want.features));
      for (const t of taps) {
        expect(got.taps[t]?.shape, t).toEqual(want.taps[t]?.shape);
        worst = Math.max(worst, maxAbsDiff(values(got.taps[t]), values(want.taps[t])));
      }
      measured[`${id}: import vs tfjs (abs)`] = worst;
      expect(worst).toBeLessThanOrEqual(1e-4);
    });
    disposeParams(ip);
  });

  it.runIf(backbone.nonTrainable?.length)(
    'batch normalisation round-trips in training mode too: batch statistics, the same running averages',
    () => {
      const { backbone: imported, params: ip } = importOnnx(bytes, { source: `${id}.onnx` });
      expect([...(imported.nonTrainable ?? [])].sort()).toEqual(
        [...(backbone.nonTrainable ?? [])].sort(),
      );
      tf.tidy(() => {
        const want = backbone.apply(params, x, { training: true });
        const got = imported.apply(ip, x, { training: true });
        const inference = backbone.apply(params, x);
        // Training mode really differs from inference here…
        expect(maxAbsDiff(values(want.features), values(inference.features))).toBeGreaterThan(1e-2);
        // …and the import reproduces it, including ONNX momentum = 1 − PyTorch momentum.
        expect(maxAbsDiff(values(got.features), values(want.features))).toBeLessThanOrEqual(1e-4);
        const names = Object.keys(want.statistics ?? {}).sort();
        expect(names).toEqual([...(backbone.nonTrainable ?? [])].sort());
        for (const name of names) {
          expect(
            maxAbsDiff(values(got.statistics?.[name]), values(want.statistics?.[name])),
            name,
          ).toBeLessThanOrEqual(1e-5);
        }
      });
      disposeParams(ip);
    },
  );

  it('onnxruntime agrees with the import on the same file (≤ 1e-4 relative)', async () => {
    const { backbone: imported, params: ip } = importOnnx(bytes, { source: `${id}.onnx` });
    const ours = tf.tidy(() => values(imported.apply(ip, x).features).slice());
    disposeParams(ip);
    const ort = await createOnnxRuntimeExtractor(bytes, { batchSize: 2 }); // several batches
    const theirs = await ort.run(x.dataSync() as Float32Array, n);
    await ort.dispose();
    const rel = relDiff(ours, theirs);
    measured[`${id}: import vs onnxruntime (rel)`] = rel;
    expect(rel).toBeLessThanOrEqual(1e-4);
    // Taps too, straight from onnxruntime.
    for (const t of taps.slice(0, 2)) {
      const tapRun = await createOnnxRuntimeExtractor(bytes, { output: t });
      const viaOrt = await tapRun.run(x.dataSync() as Float32Array, n);
      await tapRun.dispose();
      const want = tf.tidy(() => values(backbone.apply(params, x, { taps: [t] }).taps[t]).slice());
      expect(relDiff(viaOrt, want), t).toBeLessThanOrEqual(1e-4);
    }
  });
});

describe('export with a linear head', () => {
  it('adds "logits" = head(features), matching tfjs, and flattens spatial features NHWC-first', async () => {
    const backbone = createBackbone(spatialSpec);
    const head = linearHead(backbone.featureDim, 3);
    const params = mergeParams(backbone.init(createRng(1)), head.init(createRng(2)));
    const bytes = exportBackboneToOnnx(backbone, params, { head });
    const x = tf.tensor(createRng(3).normalArray(4 * 9 * 7 * 2), [4, 9, 7, 2]);
    const want = tf.tidy(() =>
      values(head.apply(params, backbone.apply(params, x).features)).slice(),
    );
    const { backbone: imported, params: ip } = importOnnx(bytes, { features: 'logits' });
    const got = tf.tidy(() => values(imported.apply(ip, x).features).slice());
    expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(1e-4);
    const ort = await createOnnxRuntimeExtractor(bytes, { output: 'logits' });
    expect(relDiff(await ort.run(x.dataSync() as Float32Array, 4), want)).toBeLessThanOrEqual(1e-4);
    await ort.dispose();
    disposeParams(ip);
  });

  it('rejects unknown outputs, unsupported opsets and missing params clearly', () => {
    const backbone = registry.get('mlp').create([4]);
    const params = backbone.init(createRng(0));
    expect(() => exportBackboneToOnnx(backbone, params, { outputs: ['conv9'] })).toThrow(
      'unknown output "conv9". Valid outputs: features, flatten, fc1, fc2',
    );
    expect(() => exportBackboneToOnnx(backbone, params, { opset: 9 })).toThrow(/opset 9/);
    const { 'fc2.bias': _, ...partial } = params;
    expect(() => exportBackboneToOnnx(backbone, partial)).toThrow('missing parameter "fc2.bias"');
  });
});

describe('fine-tuning an imported model', () => {
  const backbone = registry.get('cnn').create([12, 12, 1]);
  const n = 8;
  let params: Params;
  let bytes: Uint8Array;
  let x: tf.Tensor;
  beforeAll(() => {
    params = backbone.init(createRng(21));
    bytes = exportBackboneToOnnx(backbone, params);
    x = tf.tensor(createRng(22).normalArray(n * 144), [n, 12, 12, 1]);
  });

  it('has the tfjs backbone’s gradients (conv weights transposed to ONNX layout)', () => {
    const { backbone: imported, params: ip } = importOnnx(bytes, { source: 'cnn.onnx' });
    expect(Object.keys(imported.paramShapes).sort()).toEqual(Object.keys(params).sort());
    expect(imported.paramShapes['conv1.weight']).toEqual([16, 1, 3, 3]);
    const gradsOf = (apply: (p: Params) => tf.Tensor, p: Params) => {
      const names = Object.keys(p);
      const g = tf.grads(
        (...ts: tf.Tensor[]) =>
          tf.sum(
            tf.square(apply(Object.fromEntries(names.map((k, i) => [k, ts[i] as tf.Tensor])))),
          ) as tf.Scalar,
      )(names.map((k) => p[k] as tf.Tensor));
      return Object.fromEntries(names.map((k, i) => [k, g[i] as tf.Tensor]));
    };
    tf.tidy(() => {
      const want = gradsOf((p) => backbone.apply(p, x).features, params);
      const got = gradsOf((p) => imported.apply(p, x).features, ip);
      let worst = 0;
      for (const k of Object.keys(want)) {
        const w = want[k] as tf.Tensor;
        const ref = w.rank === 4 ? tf.transpose(w, [3, 2, 0, 1]) : w;
        const rel = relDiff(values(got[k]), values(ref));
        worst = Math.max(worst, rel);
        expect(rel, k).toBeLessThanOrEqual(1e-4);
      }
      measured['cnn: gradients import vs tfjs (rel)'] = worst;
    });
    disposeParams(ip);
  });

  it('an SGD step through the imported graph changes the params and lowers the loss', () => {
    const imported = importOnnx(bytes, { source: 'cnn.onnx' });
    const head = linearHead(imported.backbone.featureDim, 3);
    let p = mergeParams(imported.params, head.init(createRng(5)));
    const labels = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32');
    const loss = (q: Params) =>
      softmaxCrossEntropy(head.apply(q, imported.backbone.apply(q, x).features), labels);
    const optimizer = sgd({ lr: 0.05 });
    let state = optimizer.init(p);
    const before = Array.from(values(p['conv1.weight']));
    const losses: number[] = [];
    for (let step = 0; step < 5; step++) {
      const r = trainStep({ params: p, state, optimizer, loss });
      p = r.params;
      state = r.state;
      losses.push(r.loss);
    }
    const after = Array.from(values(p['conv1.weight']));
    expect(maxAbsDiff(before, after)).toBeGreaterThan(0);
    expect(losses[4] as number).toBeLessThan(losses[0] as number);
    disposeParams(p);
  });
});
