import * as tf from '@tensorflow/tfjs-core';
import { createRng, disposeParams, initBackend } from '@transferlab/core';
import { attr, type IModelProto, OnnxGraphBuilder, onnx } from '@transferlab/graph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackboneRegistry } from '../registry.js';
import { checkOnnxAgainstRuntime } from './check.js';
import { exportBackboneToOnnx } from './export.js';
import { importOnnx } from './import.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

let seed = 100;
const randn = (dims: number[], std = 0.5) =>
  createRng(seed++).normalArray(
    dims.reduce((a, b) => a * b, 1),
    std,
  );
const positive = (n: number) => Array.from(randn([n], 0.3), (v) => 0.5 + Math.abs(v));

const encode = (m: IModelProto) => onnx.ModelProto.encode(onnx.ModelProto.create(m)).finish();

/** Import vs onnxruntime on the same file and input: the relative max difference. */
async function compareWithOrt(bytes: Uint8Array, output: string, source: string): Promise<number> {
  const r = await checkOnnxAgainstRuntime(bytes, { source, output, n: 3, seed: 7 });
  expect(r.outputName).toBe(output);
  measured[`${source} ${output}`] = r.relDiff;
  return r.relDiff;
}

/** Relative diffs import vs onnxruntime, printed at the end for the record. */
const measured: Record<string, number> = {};
afterAll(() => {
  console.log(`hand-built graphs, import vs onnxruntime (rel): ${JSON.stringify(measured)}`);
});

/**
 * A NCHW graph in the style of a PyTorch export: normalisation, explicit Pad,
 * Conv, BatchNormalization, Clip(0, 6) with bounds as inputs, depthwise Conv
 * (stride 2), Sigmoid·Tanh, AveragePool with pads, MaxPool, Concat on
 * channels, Flatten spelled Shape → Gather → Unsqueeze → Concat → Reshape, and
 * Gemm with transB / alpha / beta, then Softmax.
 */
function graphA(): Uint8Array {
  const g = new OnnxGraphBuilder('hand-a');
  g.input('x', ['N', 3, 8, 8]);
  const mean = g.initializer('mean', [0.1, -0.2, 0.3], [1, 3, 1, 1]);
  const std = g.initializer('std', [0.9, 1.1, 1.3], [1, 3, 1, 1]);
  const s = g.op('Div', [g.op('Sub', ['x', mean]), std]);
  const pads = g.int64Initializer('pads', [0, 0, 1, 1, 0, 0, 1, 1], [8]);
  const p = g.op('Pad', [s, pads], { mode: attr.string('constant') });
  g.initializer('W1', randn([4, 3, 3, 3]), [4, 3, 3, 3]);
  g.initializer('B1', randn([4]), [4]);
  const c1 = g.op('Conv', [p, 'W1', 'B1'], { kernel_shape: attr.ints([3, 3]) }, 'c1', 'conv1');
  g.initializer('bn.scale', positive(4), [4]);
  g.initializer('bn.bias', randn([4]), [4]);
  g.initializer('bn.mean', randn([4]), [4]);
  g.initializer('bn.var', positive(4), [4]);
  const bn = g.op(
    'BatchNormalization',
    [c1, 'bn.scale', 'bn.bias', 'bn.mean', 'bn.var'],
    { epsilon: attr.float(1e-3) },
    'bn',
  );
  g.initializer('clip.min', [0], []);
  g.initializer('clip.max', [6], []);
  const r6 = g.op('Clip', [bn, 'clip.min', 'clip.max'], {}, 'relu6');
  g.initializer('Wd', randn([8, 1, 3, 3]), [8, 1, 3, 3]);
  g.initializer('Bd', randn([8]), [8]);
  const dw = g.op(
    'Conv',
    [r6, 'Wd', 'Bd'],
    {
      group: attr.int(4),
      kernel_shape: attr.ints([3, 3]),
      pads: attr.ints([1, 1, 1, 1]),
      strides: attr.ints([2, 2]),
    },
    'dw',
    'depthwise',
  );
  const gated = g.op('Mul', [g.op('Sigmoid', [dw]), g.op('Tanh', [dw])]);
  const ap = g.op('AveragePool', [gated], {
    kernel_shape: attr.ints([3, 3]),
    strides: attr.ints([1, 1]),
    pads: attr.ints([1, 1, 1, 1]),
  });
  const mp = g.op('MaxPool', [r6], { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) });
  const cat = g.op('Concat', [ap, mp], { axis: attr.int(1) }, 'cat');
  const shape = g.op('Shape', [cat]);
  g.int64Initializer('zero', [0], []);
  const batch = g.op('Gather', [shape, 'zero'], { axis: attr.int(0) });
  g.int64Initializer('axes0', [0], [1]);
  const batch1 = g.op('Unsqueeze', [batch, 'axes0']);
  g.int64Initializer('minus1', [-1], [1]);
  const newShape = g.op('Concat', [batch1, 'minus1'], { axis: attr.int(0) });
  const flat = g.op('Reshape', [cat, newShape], {}, 'flat');
  g.initializer('Wg', randn([5, 192], 0.1), [5, 192]);
  g.initializer('Bg', randn([5]), [5]);
  g.op(
    'Gemm',
    [flat, 'Wg', 'Bg'],
    { transB: attr.int(1), alpha: attr.float(0.5), beta: attr.float(2) },
    'logits',
  );
  g.op('Softmax', ['logits'], { axis: attr.int(-1) }, 'probs');
  g.output('logits', ['N', 5]);
  g.output('probs', ['N', 5]);
  g.output('cat', ['N', 12, 4, 4]);
  return g.toBytes({ opset: 13 });
}

/**
 * Opset 11: reflect Pad, grouped Conv with auto_pad SAME_UPPER and stride 2,
 * LeakyRelu, MaxPool and AveragePool (count_include_pad) with ceil_mode,
 * dilated Conv, edge Pad, GlobalAveragePool, Flatten, Transpose, Dropout,
 * Identity, Constant, MatMul, Add, Clip with only a max.
 */
function graphB(): Uint8Array {
  const g = new OnnxGraphBuilder('hand-b');
  g.input('x', ['N', 4, 9, 9]);
  g.int64Initializer('rpads', [0, 0, 1, 2, 0, 0, 2, 1], [8]);
  const pr = g.op('Pad', ['x', 'rpads'], { mode: attr.string('reflect') });
  g.initializer('Wg', randn([6, 2, 3, 3]), [6, 2, 3, 3]);
  const gc = g.op('Conv', [pr, 'Wg'], {
    group: attr.int(2),
    auto_pad: attr.string('SAME_UPPER'),
    strides: attr.ints([2, 2]),
  });
  const lr = g.op('LeakyRelu', [gc], { alpha: attr.float(0.2) }, 'lr');
  const mp = g.op('MaxPool', [lr], {
    kernel_shape: attr.ints([3, 3]),
    strides: attr.ints([2, 2]),
    ceil_mode: attr.int(1),
  });
  const ap = g.op('AveragePool', [lr], {
    kernel_shape: attr.ints([3, 3]),
    strides: attr.ints([2, 2]),
    pads: attr.ints([1, 1, 1, 1]),
    count_include_pad: attr.int(1),
    ceil_mode: attr.int(1),
  });
  g.initializer('Wdil', randn([3, 6, 3, 3]), [3, 6, 3, 3]);
  g.initializer('Bdil', randn([3]), [3]);
  const dil = g.op('Conv', [lr, 'Wdil', 'Bdil'], {
    dilations: attr.ints([2, 2]),
    pads: attr.ints([2, 2, 2, 2]),
  });
  g.int64Initializer('epads', [0, 0, 1, 0, 0, 0, 0, 2], [8]);
  const ep = g.op('Pad', [dil, 'epads'], { mode: attr.string('edge') });
  const gp = g.op('Flatten', [g.op('GlobalAveragePool', [ep])], {}, 'gap');
  const mpf = g.op('Flatten', [mp], { axis: attr.int(1) });
  const apf = g.op('Flatten', [g.op('Transpose', [ap], { perm: attr.ints([0, 2, 3, 1]) })]);
  const cat = g.op('Concat', [gp, mpf, apf], { axis: attr.int(1) });
  const [dropped] = g.node('Dropout', [cat], ['dropped', 'mask'], { ratio: attr.float(0.5) });
  const id = g.op('Identity', [dropped as string]);
  const dim = 3 + 6 * 3 * 3 + 6 * 4 * 4;
  const w = g.op('Constant', [], { value: attr.floatTensor(randn([dim, 7], 0.1), [dim, 7]) });
  const b = g.op('Constant', [], { value: attr.floatTensor(randn([7]), [7]) });
  const max = g.op('Constant', [], { value: attr.floatTensor([0.5], []) });
  g.op('Clip', [g.op('Add', [g.op('MatMul', [id, w]), b]), '', max], {}, 'out');
  g.output('out', ['N', 7]);
  g.output('gap', ['N', 3]);
  return g.toBytes({ opset: 11 });
}

/** Opset 10: Clip with attributes, Softmax over a flattened [C·H·W], dilated padded MaxPool. */
function graphC(): Uint8Array {
  const g = new OnnxGraphBuilder('hand-c');
  g.input('x', ['N', 2, 5, 5]);
  const c = g.op('Clip', ['x'], { min: attr.float(-0.5), max: attr.float(0.7) });
  g.op('Softmax', [c], { axis: attr.int(1) }, 'soft');
  g.op(
    'MaxPool',
    ['x'],
    {
      kernel_shape: attr.ints([2, 2]),
      dilations: attr.ints([2, 2]),
      pads: attr.ints([1, 1, 1, 1]),
    },
    'mpd',
  );
  g.output('soft', ['N', 2, 5, 5]);
  g.output('mpd', ['N', 2, 5, 5]);
  return g.toBytes({ opset: 10 });
}

describe('hand-built ONNX graphs agree with onnxruntime', () => {
  it('graph A (opset 13): Pad, Conv, BatchNorm, Clip, depthwise Conv, pools, Concat, Shape-based Flatten, Gemm', async () => {
    const bytes = graphA();
    for (const out of ['logits', 'probs', 'cat']) {
      expect(await compareWithOrt(bytes, out, 'a.onnx'), out).toBeLessThanOrEqual(1e-4);
    }
    const { backbone, params } = importOnnx(bytes, { source: 'a.onnx' });
    expect(backbone.featuresName).toBe('logits');
    expect(backbone.featureShape).toEqual([5]);
    expect(backbone.tapShapes.cat).toEqual([12, 4, 4]);
    expect(backbone.tapShapes.flat).toEqual([192]);
    // Shapes, pads and Clip bounds are constants; BN statistics are params but not trainable.
    expect(Object.keys(backbone.paramShapes).sort()).toEqual(
      [
        'B1',
        'Bd',
        'Bg',
        'W1',
        'Wd',
        'Wg',
        'bn.bias',
        'bn.mean',
        'bn.scale',
        'bn.var',
        'mean',
        'std',
      ].sort(),
    );
    expect([...backbone.nonTrainable].sort()).toEqual(['bn.mean', 'bn.var']);
    // Gradients reach every trainable parameter.
    const names = Object.keys(params).filter((n) => !backbone.nonTrainable.includes(n));
    tf.tidy(() => {
      const x = tf.tensor(randn([2, 3, 8, 8]), [2, 3, 8, 8]);
      const grads = tf.grads((...ts: tf.Tensor[]) => {
        const p = {
          ...params,
          ...Object.fromEntries(names.map((n, i) => [n, ts[i] as tf.Tensor])),
        };
        return tf.sum(tf.square(backbone.apply(p, x).features)) as tf.Scalar;
      })(names.map((n) => params[n] as tf.Tensor));
      grads.forEach((g, i) => {
        expect(tf.any(tf.notEqual(g, 0)).dataSync()[0], names[i]).toBe(1);
      });
    });
    disposeParams(params);
  });

  it('graph B (opset 11): reflect/edge Pad, grouped/dilated Conv, ceil_mode pools, MatMul, Constant', async () => {
    const bytes = graphB();
    expect(await compareWithOrt(bytes, 'out', 'b.onnx')).toBeLessThanOrEqual(1e-4);
    expect(await compareWithOrt(bytes, 'gap', 'b.onnx')).toBeLessThanOrEqual(1e-4);
  });

  it('graph C (opset 10): Clip attributes, legacy Softmax, dilated MaxPool', async () => {
    const bytes = graphC();
    expect(await compareWithOrt(bytes, 'soft', 'c.onnx')).toBeLessThanOrEqual(1e-4);
    expect(await compareWithOrt(bytes, 'mpd', 'c.onnx')).toBeLessThanOrEqual(1e-4);
  });
});

describe('the imported backbone', () => {
  it('init() gives fresh copies of the weights, independent of the returned params', () => {
    const { backbone, params } = importOnnx(graphA(), { source: 'a.onnx' });
    const w = Array.from(params.W1?.dataSync() ?? []);
    disposeParams(params);
    const again = backbone.init();
    expect(Array.from(again.W1?.dataSync() ?? [])).toEqual(w);
    const { W1: _, ...missing } = again;
    const x = tf.zeros([1, 3, 8, 8]);
    expect(() => backbone.apply(missing, x)).toThrow('a.onnx: missing parameter "W1"');
    expect(() => backbone.apply({ ...again, W1: tf.zeros([4, 3, 1, 1]) }, x)).toThrow(
      'a.onnx: parameter "W1" has shape [4,3,1,1], expected [4,3,3,3]',
    );
    expect(() => backbone.apply(again, tf.zeros([1, 8, 8]))).toThrow(
      'expects inputs of shape [N, 3,8,8], got [1,8,8]',
    );
    expect(() => backbone.apply(again, x, { taps: ['nope'] })).toThrow(
      /has no tap "nope". Available taps: /,
    );
    // Flattened inputs are accepted, as with the tfjs backbones.
    expect(backbone.apply(again, tf.zeros([2, 192])).features.shape).toEqual([2, 5]);
    disposeParams(again);
  });
});

describe('clear errors', () => {
  let cnnBytes: Uint8Array;
  beforeAll(() => {
    const bb = createBackboneRegistry().get('cnn').create([12, 12, 1]);
    const params = bb.init(createRng(0));
    cnnBytes = exportBackboneToOnnx(bb, params);
    disposeParams(params);
  });

  it('a truncated file: an error naming the file and what is wrong, at any cut point', () => {
    expect(() =>
      importOnnx(cnnBytes.subarray(0, Math.floor(cnnBytes.length / 2)), {
        source: 'truncated.onnx',
      }),
    ).toThrow(
      /^truncated\.onnx: not a valid ONNX model: protobuf decoding failed \(.+\); the file \(\d+ bytes\) is truncated or not an ONNX file$/,
    );
    // Cuts at message boundaries decode "successfully" with parts missing; each must still fail clearly.
    const before = tf.memory().numTensors;
    for (let k = 1; k < 40; k++) {
      const cut = Math.floor((cnnBytes.length * k) / 40);
      let message = '';
      try {
        importOnnx(cnnBytes.subarray(0, cut), { source: 'cut.onnx' });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, `cut at ${cut}`).toMatch(/^cut\.onnx: /);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('empty and non-ONNX files', () => {
    expect(() => importOnnx(new Uint8Array(), { source: 'empty.onnx' })).toThrow(
      'empty.onnx: not a valid ONNX model: the file is empty',
    );
    expect(() =>
      importOnnx(new TextEncoder().encode('{"not": "onnx"}'), { source: 'model.json' }),
    ).toThrow(/^model\.json: not a valid ONNX model/);
  });

  it('unsupported operators: one error listing every op type with its first node', () => {
    const g = new OnnxGraphBuilder('rnn');
    g.input('x', ['N', 5, 3]);
    g.initializer('W', randn([1, 16, 3]), [1, 16, 3]);
    g.initializer('R', randn([1, 16, 4]), [1, 16, 4]);
    const h = g.op('Relu', ['x'], {}, 'h');
    const [y] = g.node(
      'LSTM',
      [h, 'W', 'R'],
      ['y', 'y_h', 'y_c'],
      { hidden_size: attr.int(4) },
      'lstm_1',
    );
    const r1 = g.op('Resize', [y as string], {}, 'r1', 'resize_a');
    const r2 = g.op('Resize', [r1], {}, 'r2', 'resize_b');
    g.node('FusedConv', [r2], ['out'], {}, 'fused');
    const model = g.toModel();
    const fused = model.graph?.node?.at(-1);
    if (fused) fused.domain = 'com.microsoft';
    const bytes = encode(model);
    expect(() => importOnnx(bytes, { source: 'rnn.onnx', features: 'out' })).toThrow(
      /^rnn\.onnx: unsupported ONNX operators: LSTM \(node "lstm_1"\); Resize \(node "resize_a" and 1 more\); com\.microsoft\.FusedConv \(node "fused"\)\. Supported: /,
    );
    // Cutting before the unsupported part imports fine.
    const { backbone, params } = importOnnx(bytes, { source: 'rnn.onnx', features: 'h' });
    expect(backbone.featureShape).toEqual([5, 3]);
    expect(Object.keys(params)).toEqual([]);
  });

  it('references to undefined values and unknown cut points', () => {
    const g = new OnnxGraphBuilder('broken');
    g.input('x', ['N', 3]);
    g.initializer('W', randn([3, 2]), [3, 2]);
    g.op('MatMul', ['x', 'W'], {}, 'y');
    g.output('y', ['N', 2]);
    const ok = g.toBytes();
    expect(() => importOnnx(ok, { source: 'b.onnx', features: 'nope' })).toThrow(
      'b.onnx: no node produces "nope". Node outputs include: y',
    );
    expect(() => importOnnx(ok, { source: 'b.onnx', taps: ['W'] })).toThrow(
      'no node produces "W" (it is an initializer or the input)',
    );
    const model = g.toModel();
    const node = model.graph?.node?.[0];
    if (node) node.input = ['x', 'W_missing'];
    expect(() => importOnnx(encode(model), { source: 'b.onnx' })).toThrow(
      'b.onnx: input "W_missing" of node "MatMul_0" (MatMul) is not produced by any node, initializer or graph input',
    );
  });

  it('cycles are reported; long chains need no deep recursion', () => {
    const g = new OnnxGraphBuilder('cycle');
    g.input('x', ['N', 2]);
    const a = g.op('Relu', ['x'], {}, 'a', 'relu_a');
    g.op('Relu', [a], {}, 'b', 'relu_b');
    g.output('b', ['N', 2]);
    const model = g.toModel();
    const first = model.graph?.node?.[0];
    if (first) first.input = ['b'];
    expect(() => importOnnx(encode(model), { source: 'cycle.onnx' })).toThrow(
      /^cycle\.onnx: the graph has a cycle through node "relu_/,
    );
    const deep = new OnnxGraphBuilder('deep');
    let v = deep.input('x', ['N', 2]);
    for (let i = 0; i < 20000; i++) v = deep.op(i % 2 ? 'Relu' : 'Identity', [v]);
    deep.output(v, ['N', 2]);
    const { backbone } = importOnnx(deep.toBytes(), { source: 'deep.onnx', taps: [] });
    const y = tf.tidy(() =>
      Array.from(backbone.apply({}, tf.tensor2d([[-1, 2]])).features.dataSync()),
    );
    expect(y).toEqual([0, 2]);
  });
});

describe('BatchNormalization in training mode', () => {
  /** x → Conv → BatchNormalization (momentum 0.8, ε 1e-3) → Relu → GlobalAveragePool → Flatten. */
  function bnGraph(): Uint8Array {
    const g = new OnnxGraphBuilder('bn-train');
    g.input('x', ['N', 2, 5, 5]);
    g.initializer('W', randn([3, 2, 3, 3]), [3, 2, 3, 3]);
    g.initializer('B', randn([3]), [3]);
    g.op(
      'Conv',
      ['x', 'W', 'B'],
      { kernel_shape: attr.ints([3, 3]), pads: attr.ints([1, 1, 1, 1]) },
      'c1',
    );
    g.initializer('bn.scale', positive(3), [3]);
    g.initializer('bn.bias', randn([3]), [3]);
    g.initializer('bn.mean', randn([3]), [3]);
    g.initializer('bn.var', positive(3), [3]);
    g.op(
      'BatchNormalization',
      ['c1', 'bn.scale', 'bn.bias', 'bn.mean', 'bn.var'],
      { epsilon: attr.float(1e-3), momentum: attr.float(0.8) },
      'bn',
    );
    const r = g.op('Relu', ['bn']);
    const gap = g.op('GlobalAveragePool', [r]);
    g.op('Flatten', [gap], { axis: attr.int(1) }, 'features');
    g.output('features', ['N', 3]);
    return g.toBytes({ opset: 13 });
  }

  it('normalises with the batch statistics and reports the moving averages (unbiased variance)', () => {
    const { backbone, params } = importOnnx(bnGraph(), { source: 'bn.onnx', taps: ['c1', 'bn'] });
    expect([...backbone.nonTrainable].sort()).toEqual(['bn.mean', 'bn.var']);
    const x = tf.tensor(randn([4, 2, 5, 5], 1), [4, 2, 5, 5]);
    tf.tidy(() => {
      const out = backbone.apply(params, x, { taps: ['c1', 'bn'], training: true });
      const c1 = out.taps.c1 as tf.Tensor;
      const { mean, variance } = tf.moments(c1, [0, 2, 3]);
      const shape = [1, 3, 1, 1];
      const want = tf.add(
        tf.mul(
          tf.reshape(params['bn.scale'] as tf.Tensor, shape),
          tf.div(
            tf.sub(c1, tf.reshape(mean, shape)),
            tf.sqrt(tf.add(tf.reshape(variance, shape), 1e-3)),
          ),
        ),
        tf.reshape(params['bn.bias'] as tf.Tensor, shape),
      );
      expect(tf.max(tf.abs(tf.sub(out.taps.bn as tf.Tensor, want))).dataSync()[0]).toBeLessThan(
        1e-5,
      );
      const n = 4 * 5 * 5;
      const wantMean = tf.add(tf.mul(params['bn.mean'] as tf.Tensor, 0.8), tf.mul(mean, 0.2));
      const wantVar = tf.add(
        tf.mul(params['bn.var'] as tf.Tensor, 0.8),
        tf.mul(variance, (0.2 * n) / (n - 1)),
      );
      const stats = out.statistics ?? {};
      expect(Object.keys(stats).sort()).toEqual(['bn.mean', 'bn.var']);
      expect(
        tf.max(tf.abs(tf.sub(stats['bn.mean'] as tf.Tensor, wantMean))).dataSync()[0],
      ).toBeLessThan(1e-6);
      expect(
        tf.max(tf.abs(tf.sub(stats['bn.var'] as tf.Tensor, wantVar))).dataSync()[0],
      ).toBeLessThan(1e-5);
      // Inference mode: the stored statistics, nothing reported.
      const inference = backbone.apply(params, x, { taps: ['bn'] });
      expect(inference.statistics).toBeUndefined();
      const stored = tf.add(
        tf.mul(
          tf.reshape(params['bn.scale'] as tf.Tensor, shape),
          tf.div(
            tf.sub(c1, tf.reshape(params['bn.mean'] as tf.Tensor, shape)),
            tf.sqrt(tf.add(tf.reshape(params['bn.var'] as tf.Tensor, shape), 1e-3)),
          ),
        ),
        tf.reshape(params['bn.bias'] as tf.Tensor, shape),
      );
      expect(
        tf.max(tf.abs(tf.sub(inference.taps.bn as tf.Tensor, stored))).dataSync()[0],
      ).toBeLessThan(1e-5);
    });
    tf.dispose([x, ...Object.values(params)]);
  });

  it('gradients flow through the batch statistics (finite differences)', () => {
    const { backbone, params } = importOnnx(bnGraph(), { source: 'bn.onnx', taps: ['bn'] });
    const x = tf.tensor(randn([3, 2, 5, 5], 1), [3, 2, 5, 5]);
    const r = tf.tensor(randn([3, 3, 5, 5], 1), [3, 3, 5, 5]);
    // Smooth in every weight: Σ bn ⊙ R (no ReLU in the way).
    const loss = (p: Record<string, tf.Tensor>) =>
      tf.sum(
        tf.mul(backbone.apply(p, x, { taps: ['bn'], training: true }).taps.bn as tf.Tensor, r),
      ) as tf.Scalar;
    const { grads } = tf.tidy(() => {
      const g = tf.grads((w: tf.Tensor) => loss({ ...params, W: w }))([params.W as tf.Tensor]);
      return { grads: g.map((t) => tf.keep(t)) };
    });
    const analytic = grads[0]?.dataSync() as Float32Array;
    const w0 = params.W?.dataSync() as Float32Array;
    const h = 1e-2;
    let worst = 0;
    for (const i of [0, 7, 20, 33, 53]) {
      const at = (delta: number) =>
        tf.tidy(() => {
          const w = Float32Array.from(w0);
          w[i] = (w[i] as number) + delta;
          return loss({ ...params, W: tf.tensor(w, params.W?.shape) }).dataSync()[0] as number;
        });
      const fd = (at(h) - at(-h)) / (2 * h);
      worst = Math.max(worst, Math.abs(fd - (analytic[i] as number)) / Math.max(1, Math.abs(fd)));
    }
    measured['bn training-mode gradient vs FD (rel)'] = worst;
    expect(worst).toBeLessThan(5e-3);
    tf.dispose([x, r, ...grads, ...Object.values(params)]);
  });

  it('a file exported in training mode is refused with the way out', () => {
    const g = new OnnxGraphBuilder('bn-exported-training');
    g.input('x', ['N', 2]);
    for (const n of ['s', 'b', 'm', 'v']) g.initializer(n, [1, 1], [2]);
    g.op('BatchNormalization', ['x', 's', 'b', 'm', 'v'], { training_mode: attr.int(1) }, 'y');
    g.output('y', ['N', 2]);
    expect(() => importOnnx(g.toBytes({ opset: 15 }), { source: 't.onnx' })).toThrow(
      /t.onnx: node "BatchNormalization_0" \(BatchNormalization\): training_mode = 1 is not supported: export the model in eval mode/,
    );
  });
});
