import * as tf from '@tensorflow/tfjs-core';
import { countParams, createRng, initBackend } from '@transferlab/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { cnnSpec, createBackbone, mlpSpec, resnetSpec } from './backbone.js';
import { linearHead } from './head.js';
import { builtinBackbones, createBackboneRegistry } from './registry.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('MLP backbone', () => {
  const bb = createBackbone(mlpSpec([28, 28, 1], [32, 16]));
  it('has the expected shapes, taps and parameter count', () => {
    expect(bb.featureDim).toBe(16);
    expect(bb.tapShapes).toEqual({ flatten: [784], fc1: [32], fc2: [16] });
    const params = bb.init(createRng(0));
    expect(countParams(params)).toBe(784 * 32 + 32 + 32 * 16 + 16);
  });

  it('computes relu(relu(x W1 + b1) W2 + b2) and returns requested taps', () => {
    const params = bb.init(createRng(1));
    const x = tf.tensor(createRng(2).normalArray(3 * 784), [3, 28, 28, 1]);
    const out = bb.apply(params, x, { taps: ['fc1'] });
    const flat = x.reshape([3, 784]);
    const h1 = tf.relu(
      tf.add(tf.matMul(flat, params['fc1.weight'] as tf.Tensor2D), params['fc1.bias'] as tf.Tensor),
    );
    const h2 = tf.relu(
      tf.add(tf.matMul(h1, params['fc2.weight'] as tf.Tensor2D), params['fc2.bias'] as tf.Tensor),
    );
    expect(out.features.shape).toEqual([3, 16]);
    expect(Math.max(...tf.abs(tf.sub(out.features, h2)).dataSync())).toBeLessThan(1e-5);
    expect(Math.max(...tf.abs(tf.sub(out.taps.fc1 as tf.Tensor, h1)).dataSync())).toBeLessThan(
      1e-5,
    );
    expect(Object.keys(out.taps)).toEqual(['fc1']);
  });

  it('He init: weight std ≈ sqrt(2 / fan-in); same seed, same weights', () => {
    const a = bb.init(createRng(5));
    const b = bb.init(createRng(5));
    const w = Array.from((a['fc1.weight'] as tf.Tensor).dataSync());
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    expect(std).toBeCloseTo(Math.sqrt(2 / 784), 3);
    expect(Array.from((b['fc1.weight'] as tf.Tensor).dataSync())).toEqual(w);
  });

  it('unknown taps and wrong input sizes give clear errors', () => {
    const params = bb.init(createRng(1));
    expect(() => bb.apply(params, tf.zeros([1, 784]), { taps: ['conv9'] })).toThrow(
      'backbone "mlp-32-16" has no tap "conv9". Available taps: flatten, fc1, fc2',
    );
    expect(() => bb.apply(params, tf.zeros([1, 100]))).toThrow(
      /expects inputs of shape \[N, 28,28,1\]/,
    );
  });
});

describe('CNN backbone', () => {
  const bb = createBackbone(cnnSpec([28, 28, 1], [4, 8], 16));
  it('tracks shapes through conv and pooling', () => {
    expect(bb.tapShapes.conv1).toEqual([28, 28, 4]);
    expect(bb.tapShapes.pool1).toEqual([14, 14, 4]);
    expect(bb.tapShapes.pool2).toEqual([7, 7, 8]);
    expect(bb.featureDim).toBe(16);
    const params = bb.init(createRng(0));
    expect(countParams(params)).toBe(9 * 4 + 4 + 9 * 4 * 8 + 8 + 7 * 7 * 8 * 16 + 16);
    const out = bb.apply(params, tf.zeros([2, 28, 28, 1]), { taps: ['pool2'] });
    expect(out.taps.pool2?.shape).toEqual([2, 7, 7, 8]);
  });

  it('gradients on wasm match cpu (needs the wasm Conv2DBackpropFilter kernel)', async () => {
    const params = bb.init(createRng(3));
    const xs = createRng(4).normalArray(2 * 784);
    const grads = async (backend: string) => {
      await initBackend({ backend });
      const p = Object.fromEntries(
        Object.entries(params).map(([k, v]) => [k, tf.tensor(v.dataSync(), v.shape)]),
      );
      const x = tf.tensor(xs, [2, 28, 28, 1]);
      const names = Object.keys(p);
      const g = tf.grads((...ts: tf.Tensor[]) => {
        const q = Object.fromEntries(names.map((n, i) => [n, ts[i] as tf.Tensor]));
        return tf.sum(tf.square(bb.apply(q, x).features)) as tf.Scalar;
      })(names.map((n) => p[n] as tf.Tensor));
      return Object.fromEntries(
        names.map((n, i) => [n, Array.from((g[i] as tf.Tensor).dataSync())]),
      );
    };
    const onCpu = await grads('cpu');
    const onWasm = await grads('wasm');
    await initBackend({ backend: 'cpu' });
    for (const name of Object.keys(onCpu)) {
      const a = onCpu[name] as number[];
      const b = onWasm[name] as number[];
      const scale = Math.max(1e-6, ...a.map(Math.abs));
      const diff = Math.max(...a.map((v, i) => Math.abs(v - (b[i] as number))));
      expect(diff / scale, name).toBeLessThan(1e-4);
    }
  });
});

describe('linear head and registry', () => {
  it('head logits = features W + b', () => {
    const head = linearHead(3, 2);
    const params = head.init(createRng(0));
    const f = tf.tensor2d([[1, 2, 3]]);
    const expected = tf.add(
      tf.matMul(f, params['head.weight'] as tf.Tensor2D),
      params['head.bias'] as tf.Tensor,
    );
    expect(Array.from(head.apply(params, f).dataSync())).toEqual(Array.from(expected.dataSync()));
    expect(() => linearHead(3, 1)).toThrow(/numClasses > 1/);
  });

  it('lists the built-in backbones and rejects unknown ids', () => {
    const reg = createBackboneRegistry();
    expect(reg.ids).toEqual(builtinBackbones.map((b) => b.id));
    expect(() => reg.get('vgg16')).toThrow(
      'Unknown backbone "vgg16". Valid backbone ids: mlp, cnn, cnn-small, resnet, resnet-bn, quadratic',
    );
  });
});

describe('quadratic backbone', () => {
  it('computes (x W + b)² and survives an ONNX round trip', async () => {
    const { exportBackboneToOnnx, importOnnx } = await import('./index.js');
    const bb = createBackboneRegistry().get('quadratic').create([6]);
    const params = bb.init(createRng(3));
    const x = tf.tensor2d(createRng(4).normalArray(12), [2, 6]);
    const pre = tf.add(
      tf.matMul(x, params['q1.weight'] as tf.Tensor2D),
      params['q1.bias'] as tf.Tensor,
    );
    const out = bb.apply(params, x).features;
    expect(Math.max(...tf.abs(tf.sub(out, tf.square(pre))).dataSync())).toBeLessThan(1e-5);
    const imported = importOnnx(exportBackboneToOnnx(bb, params));
    const again = imported.backbone.apply(imported.params, x).features;
    expect(Math.max(...tf.abs(tf.sub(again, out)).dataSync())).toBeLessThan(1e-5);
  });
});

describe('residual blocks and the resnet backbone', () => {
  const conv = (x: tf.Tensor, p: Record<string, tf.Tensor>, n: string, s: number) =>
    tf.add(
      tf.conv2d(x as tf.Tensor4D, p[`${n}.weight`] as tf.Tensor4D, s, 'same'),
      p[`${n}.bias`] as tf.Tensor,
    );

  it.each([
    ['identity shortcut', 3, 1, false],
    ['projection (stride 2)', 4, 2, true],
    ['projection (channels)', 5, 1, true],
  ] as const)('%s: relu(conv2(relu(conv1 x)) + shortcut x)', (_name, filters, stride, projects) => {
    const spec = {
      name: 'one-block',
      inputShape: [7, 7, 3],
      layers: [{ kind: 'residual', name: 'b', filters, stride } as const],
    };
    const bb = createBackbone(spec);
    expect(Object.keys(bb.paramShapes).some((n) => n.startsWith('b.proj'))).toBe(projects);
    const side = Math.ceil(7 / stride);
    expect(bb.featureShape).toEqual([side, side, filters]);
    // Non-zero biases so that every parameter matters.
    const params: Record<string, tf.Tensor> = { ...bb.init(createRng(1)) };
    for (const n of Object.keys(params)) {
      if (n.endsWith('.bias')) {
        params[n]?.dispose();
        params[n] = tf.tensor(createRng(n.length).normalArray(filters, 0.1));
      }
    }
    const x = tf.tensor(createRng(2).normalArray(2 * 7 * 7 * 3), [2, 7, 7, 3]);
    tf.tidy(() => {
      const branch = conv(tf.relu(conv(x, params, 'b.conv1', stride)), params, 'b.conv2', 1);
      const shortcut = projects ? conv(x, params, 'b.proj', stride) : x;
      const want = tf.relu(tf.add(branch, shortcut));
      const got = bb.apply(params, x).features;
      expect(tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]).toBeLessThan(1e-5);
    });
    tf.dispose([x, ...Object.values(params)]);
  });

  it('resnet: stem, one block per stage halving the resolution, global pooling; taps per block', () => {
    const bb = createBackboneRegistry().get('resnet').create([28, 28, 1]);
    expect(bb.tapShapes).toEqual({
      stem: [28, 28, 16],
      block1_1: [28, 28, 16],
      block2_1: [14, 14, 32],
      block3_1: [7, 7, 64],
      pool: [64],
    });
    expect(bb.paramShapes['block1_1.proj.weight']).toBeUndefined();
    expect(bb.paramShapes['block2_1.proj.weight']).toEqual([1, 1, 16, 32]);
    const deeper = createBackbone(resnetSpec([8, 8, 1], [4, 8], 2));
    expect(Object.keys(deeper.tapShapes)).toEqual([
      'stem',
      'block1_1',
      'block1_2',
      'block2_1',
      'block2_2',
      'pool',
    ]);
    expect(() => resnetSpec([28, 28], [4])).toThrow(/\[H, W, C\]/);
    // He init for conv1 (a ReLU follows), LeCun for conv2 / proj (they feed the sum).
    const params = bb.init(createRng(0));
    const std = (n: string) => {
      const v = params[n]?.dataSync() as Float32Array;
      return Math.sqrt(v.reduce((a, b) => a + b * b, 0) / v.length);
    };
    expect(std('block3_1.conv1.weight')).toBeCloseTo(Math.sqrt(2 / (9 * 32)), 2);
    expect(std('block3_1.conv2.weight')).toBeCloseTo(Math.sqrt(1 / (9 * 64)), 2);
    tf.dispose(Object.values(params));
  });
});
