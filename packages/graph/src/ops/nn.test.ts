/**
 * The nn rules (Conv, ConvTranspose, pools, BatchNormalization, Resize):
 * inferred shapes against onnxruntime's, forward values and gradients
 * against tfjs (NHWC, so the tfjs functions transpose), gradients against
 * central finite differences, MaxPool's tie convention against a
 * hand-computed first-maximum expectation, and a second-order check.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { attr, type OnnxAttr } from '../attr.js';
import { addGradients } from '../autodiff.js';
import { batchNormTraining } from '../batch-norm.js';
import { OnnxGraphBuilder } from '../builder.js';
import { gradCheck, projectToScalar, randomFloats } from '../grad-check.js';
import { createSession, type HostTensor, runGraphOnce, runSession } from '../runtime.js';

interface NnCase {
  name: string;
  inputs: Record<string, readonly number[]>;
  graph: (g: OnnxGraphBuilder) => string;
  /** The same function in tfjs on the same NCHW values (undefined: finite differences only). */
  tfjs?: (...xs: tf.Tensor[]) => tf.Tensor;
  /** Input values (default: random in [−1, 1]); `distinct` spaces them ≥ 0.02 apart (max pools). */
  data?: 'random' | 'distinct' | ((name: string, n: number) => Float32Array);
  /** Inputs that get no gradient. */
  fixed?: readonly string[];
  /** Compare only the forward values with tfjs (where tfjs's own gradient is wrong). */
  tfjsForwardOnly?: boolean;
  coordinates?: number;
}

const nhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]);
const nchw = (t: tf.Tensor) => tf.transpose(t, [0, 3, 1, 2]);
/** ONNX weights [O, I, kh, kw] as tfjs filters [kh, kw, I, O]. */
const hwio = (w: tf.Tensor) => tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D;
const ints = (v: readonly number[]) => attr.ints(v);

function inputValues(c: NnCase): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  Object.entries(c.inputs).forEach(([name, dims], k) => {
    const n = dims.reduce((a, b) => a * b, 1);
    if (typeof c.data === 'function') out[name] = c.data(name, n);
    else if (c.data === 'distinct') {
      // A shuffled ladder 0.05 apart: no two values within the finite-difference step.
      const order = Array.from(randomFloats(n, 101 + 17 * k)).map((v, i) => [v, i] as const);
      order.sort((a, b) => a[0] - b[0]);
      const v = new Float32Array(n);
      order.forEach(([, i], rank) => {
        v[i] = (rank - n / 2) * 0.05;
      });
      out[name] = v;
    } else {
      const base = randomFloats(n, 11 + 31 * k, 1);
      out[name] = base;
    }
  });
  return out;
}

function tfjsForwardAndGrads(c: NnCase, values: Record<string, Float32Array>) {
  return tf.tidy(() => {
    const names = Object.keys(c.inputs);
    const xs = names.map((n) =>
      tf.tensor(values[n] as Float32Array, [...(c.inputs[n] as number[])]),
    );
    const f = c.tfjs as NonNullable<NnCase['tfjs']>;
    const y = f(...xs);
    const w = tf.tensor(randomFloats(y.size, 7), y.shape);
    const free = names.map((_, i) => i).filter((i) => !c.fixed?.includes(names[i] as string));
    const grads = tf.grads((...a: tf.Tensor[]) => {
      const all = [...xs];
      free.forEach((i, k) => {
        all[i] = a[k] as tf.Tensor;
      });
      return tf.sum(tf.mul(f(...all), w));
    })(free.map((i) => xs[i] as tf.Tensor));
    return {
      y: { data: y.dataSync() as Float32Array, dims: y.shape },
      grads: Object.fromEntries(
        free.map((i, k) => [names[i], (grads[k] as tf.Tensor).dataSync() as Float32Array]),
      ),
    };
  });
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const r = b[i] as number;
    worst = Math.max(worst, Math.abs((a[i] as number) - r) / Math.max(1, Math.abs(r)));
  }
  return worst;
}

/** The forward output of a case through onnxruntime, with the inferred dims. */
async function forward(c: NnCase, values: Record<string, Float32Array>) {
  const g = new OnnxGraphBuilder('forward');
  for (const [n, dims] of Object.entries(c.inputs)) g.input(n, dims);
  const y = c.graph(g);
  g.output(y);
  const feeds: Record<string, HostTensor> = {};
  for (const [n, dims] of Object.entries(c.inputs))
    feeds[n] = { data: values[n] as Float32Array, dims };
  const out = (await runGraphOnce(g.toBytes({ opset: 17 }), feeds))[y] as HostTensor;
  return { out, inferred: g.dims(y) };
}

async function checkNnCase(c: NnCase): Promise<void> {
  const values = inputValues(c);
  const { out, inferred } = await forward(c, values);
  expect(out.dims, `${c.name}: inferred shape`).toEqual(inferred);
  const result = await gradCheck({
    inputs: Object.fromEntries(
      Object.entries(c.inputs).map(([n, dims]) => [
        n,
        { dims, data: values[n] as Float32Array, wrt: !c.fixed?.includes(n) },
      ]),
    ),
    build: (g) => projectToScalar(g, c.graph(g)),
    coordinates: c.coordinates ?? 40,
  });
  expect(result.maxRelError, `${c.name}: vs finite differences`).toBeLessThan(1e-2);
  if (!c.tfjs) return;
  const ref = tfjsForwardAndGrads(c, values);
  expect(out.dims, `${c.name}: shape vs tfjs`).toEqual(ref.y.dims);
  expect(
    maxRelDiff(out.data as Float32Array, ref.y.data),
    `${c.name}: forward vs tfjs`,
  ).toBeLessThan(1e-5);
  if (c.tfjsForwardOnly) return;
  for (const [name, grad] of Object.entries(result.analytic))
    expect(
      maxRelDiff(grad, ref.grads[name] as Float32Array),
      `${c.name}: ∂/∂${name} vs tfjs`,
    ).toBeLessThan(1e-4);
}

/** Two outputs of different shapes as one value: their flattened concatenation. */
const both = (g: OnnxGraphBuilder, a: string, b: string) =>
  g.op('Concat', [g.op('Flatten', [a]), g.op('Flatten', [b])], { axis: attr.int(1) });

/** A tfjs filter [kh, kw, I, O] dilated by 2: zeros between the taps (tfjs has no dilated conv gradient). */
function dilate2(f: tf.Tensor4D): tf.Tensor4D {
  const [kh, kw, i, o] = f.shape;
  const rows = tf.slice(
    tf.reshape(tf.stack([f, tf.zerosLike(f)], 1), [2 * kh, kw, i, o]),
    0,
    2 * kh - 1,
  );
  const cols = tf.reshape(tf.stack([rows, tf.zerosLike(rows)], 2), [2 * kh - 1, 2 * kw, i, o]);
  return tf.slice(cols, [0, 0, 0, 0], [2 * kh - 1, 2 * kw - 1, i, o]) as tf.Tensor4D;
}

const conv =
  (x: string, w: string, a: Record<string, OnnxAttr>, b?: string) => (g: OnnxGraphBuilder) =>
    g.op('Conv', b ? [x, w, b] : [x, w], a);

const convCases: NnCase[] = [
  {
    name: 'Conv 3×3 stride 2, odd input, bias',
    inputs: { x: [2, 3, 7, 7], w: [4, 3, 3, 3], b: [4] },
    graph: conv('x', 'w', { strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) }, 'b'),
    tfjs: (x, w, b) =>
      nchw(
        tf.add(
          tf.conv2d(nhwc(x as tf.Tensor) as tf.Tensor4D, hwio(w as tf.Tensor), 2, [
            [0, 0],
            [1, 1],
            [1, 1],
            [0, 0],
          ]),
          b as tf.Tensor,
        ),
      ),
  },
  {
    name: 'Conv stride 2, asymmetric ("same"-like) pads, 3×2 kernel',
    inputs: { x: [1, 2, 6, 5], w: [3, 2, 3, 2] },
    graph: conv('x', 'w', { strides: ints([2, 2]), pads: ints([0, 0, 1, 1]) }),
    tfjs: (x, w) =>
      nchw(
        tf.conv2d(nhwc(x as tf.Tensor) as tf.Tensor4D, hwio(w as tf.Tensor), 2, [
          [0, 0],
          [0, 1],
          [0, 1],
          [0, 0],
        ]),
      ),
  },
  {
    name: 'Conv auto_pad SAME_UPPER stride 2 (tfjs "same")',
    inputs: { x: [2, 2, 8, 7], w: [3, 2, 3, 3] },
    graph: conv('x', 'w', { strides: ints([2, 2]), auto_pad: attr.string('SAME_UPPER') }),
    tfjs: (x, w) =>
      nchw(tf.conv2d(nhwc(x as tf.Tensor) as tf.Tensor4D, hwio(w as tf.Tensor), 2, 'same')),
  },
  {
    name: 'Conv auto_pad SAME_LOWER and VALID (finite differences)',
    inputs: { x: [1, 2, 7, 6], w: [2, 2, 2, 3] },
    graph: (g) =>
      both(
        g,
        g.op('Conv', ['x', 'w'], { strides: ints([2, 2]), auto_pad: attr.string('SAME_LOWER') }),
        g.op('Conv', ['x', 'w'], {
          strides: ints([2, 1]),
          auto_pad: attr.string('VALID'),
          kernel_shape: ints([2, 3]),
        }),
      ),
  },
  {
    name: 'Conv dilation 2',
    inputs: { x: [1, 2, 8, 8], w: [3, 2, 3, 3], b: [3] },
    graph: conv('x', 'w', { dilations: ints([2, 2]), pads: ints([2, 2, 2, 2]) }, 'b'),
    tfjs: (x, w, b) =>
      nchw(
        tf.add(
          tf.conv2d(nhwc(x as tf.Tensor) as tf.Tensor4D, dilate2(hwio(w as tf.Tensor)), 1, [
            [0, 0],
            [2, 2],
            [2, 2],
            [0, 0],
          ]),
          b as tf.Tensor,
        ),
      ),
  },
  {
    name: 'Conv dilation 2 with stride 2 (finite differences)',
    inputs: { x: [1, 2, 9, 8], w: [2, 2, 3, 2] },
    graph: conv('x', 'w', {
      dilations: ints([2, 2]),
      strides: ints([2, 2]),
      pads: ints([1, 0, 2, 1]),
    }),
  },
  {
    name: 'Conv depthwise (group = C) 3×3 stride 2, channel multiplier 2',
    inputs: { x: [2, 3, 9, 9], w: [6, 1, 3, 3], b: [6] },
    graph: conv(
      'x',
      'w',
      { group: attr.int(3), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) },
      'b',
    ),
    tfjs: (x, w, b) => {
      // ONNX [C·m, 1, kh, kw] → tfjs [kh, kw, C, m] (output channel c·m + j in both).
      const f = tf.transpose(tf.reshape(w as tf.Tensor, [3, 2, 3, 3]), [2, 3, 0, 1]) as tf.Tensor4D;
      return nchw(
        tf.add(
          tf.depthwiseConv2d(nhwc(x as tf.Tensor) as tf.Tensor4D, f, 2, [
            [0, 0],
            [1, 1],
            [1, 1],
            [0, 0],
          ]),
          b as tf.Tensor,
        ),
      );
    },
  },
  {
    name: 'Conv depthwise (group = C) 3×3 stride 1, pads 1',
    inputs: { x: [2, 3, 6, 7], w: [3, 1, 3, 3] },
    graph: conv('x', 'w', { group: attr.int(3), pads: ints([1, 1, 1, 1]) }),
    tfjs: (x, w) =>
      nchw(
        tf.depthwiseConv2d(
          nhwc(x as tf.Tensor) as tf.Tensor4D,
          tf.transpose(w as tf.Tensor, [2, 3, 0, 1]) as tf.Tensor4D,
          1,
          [
            [0, 0],
            [1, 1],
            [1, 1],
            [0, 0],
          ],
        ),
      ),
  },
  {
    name: 'Conv grouped (group 2)',
    inputs: { x: [2, 4, 5, 6], w: [6, 2, 3, 3] },
    graph: conv('x', 'w', { group: attr.int(2), pads: ints([1, 0, 1, 2]) }),
    tfjs: (x, w) => {
      const xs = tf.split(nhwc(x as tf.Tensor), 2, 3);
      const ws = tf.split(w as tf.Tensor, 2, 0);
      const pads: [[number, number], [number, number], [number, number], [number, number]] = [
        [0, 0],
        [1, 1],
        [0, 2],
        [0, 0],
      ];
      return nchw(
        tf.concat(
          xs.map((xi, i) => tf.conv2d(xi as tf.Tensor4D, hwio(ws[i] as tf.Tensor), 1, pads)),
          3,
        ),
      );
    },
  },
  {
    name: 'Conv 1×1 with bias',
    inputs: { x: [2, 5, 4, 3], w: [3, 5, 1, 1], b: [3] },
    graph: conv('x', 'w', {}, 'b'),
    tfjs: (x, w, b) =>
      nchw(
        tf.add(
          tf.conv2d(nhwc(x as tf.Tensor) as tf.Tensor4D, hwio(w as tf.Tensor), 1, 'valid'),
          b as tf.Tensor,
        ),
      ),
  },
  {
    name: 'Conv 1-D (finite differences)',
    inputs: { x: [2, 3, 11], w: [4, 3, 3], b: [4] },
    graph: conv('x', 'w', { strides: ints([2]), pads: ints([1, 1]) }, 'b'),
  },
  {
    name: 'ConvTranspose stride 2, pads, output_padding, bias',
    inputs: { x: [1, 3, 4, 4], w: [3, 2, 3, 3], b: [2] },
    graph: (g) =>
      g.op('ConvTranspose', ['x', 'w', 'b'], {
        strides: ints([2, 2]),
        pads: ints([1, 1, 1, 1]),
        output_padding: ints([1, 1]),
      }),
    tfjs: (x, w, b) => {
      // tfjs's 'valid' transpose is the uncropped output (9×9); ONNX's pads crop it, output_padding extends it.
      const full = tf.conv2dTranspose(
        nhwc(x as tf.Tensor) as tf.Tensor4D,
        hwio(w as tf.Tensor),
        [1, 9, 9, 2],
        2,
        'valid',
      );
      const ext = tf.pad(full, [
        [0, 0],
        [0, 1],
        [0, 1],
        [0, 0],
      ]);
      return nchw(tf.add(tf.slice(ext, [0, 1, 1, 0], [1, 8, 8, 2]), b as tf.Tensor));
    },
  },
  {
    name: 'ConvTranspose grouped, dilated (finite differences)',
    inputs: { x: [2, 4, 3, 4], w: [4, 3, 2, 3] },
    graph: (g) =>
      g.op('ConvTranspose', ['x', 'w'], {
        group: attr.int(2),
        strides: ints([3, 2]),
        dilations: ints([1, 2]),
        pads: ints([0, 1, 1, 0]),
        output_padding: ints([2, 1]),
      }),
  },
  {
    name: 'ConvTranspose stride 1: depthwise, and dense with pads (finite differences)',
    inputs: { x: [2, 4, 4, 5], wd: [4, 1, 3, 3], w: [4, 3, 2, 3] },
    graph: (g) =>
      both(
        g,
        g.op('ConvTranspose', ['x', 'wd'], { group: attr.int(4), pads: ints([1, 1, 1, 1]) }),
        g.op('ConvTranspose', ['x', 'w'], { pads: ints([0, 1, 1, 0]), dilations: ints([2, 1]) }),
      ),
  },
  {
    name: 'ConvTranspose output_shape and auto_pad SAME_UPPER (finite differences)',
    inputs: { x: [1, 2, 3, 3], w: [2, 2, 3, 3] },
    graph: (g) =>
      both(
        g,
        g.op('ConvTranspose', ['x', 'w'], { strides: ints([2, 2]), output_shape: ints([6, 5]) }),
        g.op('ConvTranspose', ['x', 'w'], {
          strides: ints([2, 2]),
          auto_pad: attr.string('SAME_UPPER'),
        }),
      ),
  },
];

const poolCases: NnCase[] = [
  {
    name: 'MaxPool 2×2/2',
    inputs: { x: [2, 3, 6, 8] },
    data: 'distinct',
    graph: (g) => g.op('MaxPool', ['x'], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) }),
    tfjs: (x) => nchw(tf.maxPool(nhwc(x as tf.Tensor) as tf.Tensor4D, 2, 2, 'valid')),
  },
  {
    name: 'MaxPool 2×2/2 on an odd input (remainder rows and columns)',
    inputs: { x: [1, 2, 7, 5] },
    data: 'distinct',
    graph: (g) => g.op('MaxPool', ['x'], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) }),
    tfjs: (x) => nchw(tf.maxPool(nhwc(x as tf.Tensor) as tf.Tensor4D, 2, 2, 'valid')),
  },
  {
    name: 'MaxPool 3×3/2 overlapping, pads 1 (tfjs "same")',
    inputs: { x: [2, 2, 9, 9] },
    data: 'distinct',
    graph: (g) =>
      g.op('MaxPool', ['x'], {
        kernel_shape: ints([3, 3]),
        strides: ints([2, 2]),
        pads: ints([1, 1, 1, 1]),
      }),
    tfjs: (x) => nchw(tf.maxPool(nhwc(x as tf.Tensor) as tf.Tensor4D, 3, 2, 'same')),
  },
  {
    name: 'MaxPool 3×3/2 overlapping, no pads',
    inputs: { x: [1, 3, 8, 7] },
    data: 'distinct',
    graph: (g) => g.op('MaxPool', ['x'], { kernel_shape: ints([3, 3]), strides: ints([2, 2]) }),
    tfjs: (x) => nchw(tf.maxPool(nhwc(x as tf.Tensor) as tf.Tensor4D, 3, 2, 'valid')),
  },
  {
    name: 'MaxPool ceil_mode 2×2/2 with a pad, 3×2 dilated (finite differences)',
    inputs: { x: [1, 2, 5, 7] },
    data: 'distinct',
    graph: (g) =>
      both(
        g,
        g.op('MaxPool', ['x'], {
          kernel_shape: ints([2, 2]),
          strides: ints([2, 2]),
          pads: ints([0, 1, 0, 0]),
          ceil_mode: attr.int(1),
        }),
        g.op('MaxPool', ['x'], {
          kernel_shape: ints([3, 2]),
          strides: ints([1, 2]),
          dilations: ints([1, 2]),
          pads: ints([0, 1, 2, 1]),
        }),
      ),
  },
  {
    name: 'MaxPool and AveragePool 2×2/2 ceil_mode on an odd input (a window past the end)',
    inputs: { x: [2, 2, 7, 5] },
    data: 'distinct',
    graph: (g) => {
      const a = { kernel_shape: ints([2, 2]), strides: ints([2, 2]), ceil_mode: attr.int(1) };
      return both(g, g.op('MaxPool', ['x'], a), g.op('AveragePool', ['x'], a));
    },
  },
  {
    name: 'AveragePool 2×2/2',
    inputs: { x: [2, 3, 6, 7] },
    graph: (g) => g.op('AveragePool', ['x'], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) }),
    tfjs: (x) => nchw(tf.avgPool(nhwc(x as tf.Tensor) as tf.Tensor4D, 2, 2, 'valid')),
  },
  {
    name: 'AveragePool 3×3/2, pads 1, count_include_pad 0 (tfjs "same")',
    inputs: { x: [2, 2, 9, 8] },
    graph: (g) =>
      g.op('AveragePool', ['x'], {
        kernel_shape: ints([3, 3]),
        strides: ints([2, 2]),
        pads: ints([1, 0, 1, 1]),
      }),
    // tfjs's own avgPool gradient divides by the full window even where its
    // forward excluded the pads; as a window sum over per-window counts its gradient is right.
    tfjs: (x) => {
      const pads: [number, number][] = [
        [0, 0],
        [1, 1],
        [0, 1],
        [0, 0],
      ];
      const sum = (t: tf.Tensor) =>
        tf.mul(tf.avgPool(tf.pad(t, pads) as tf.Tensor4D, 3, 2, 'valid'), 9);
      const counts = sum(tf.ones([1, 9, 8, 1]));
      return nchw(tf.div(sum(nhwc(x as tf.Tensor)), counts));
    },
  },
  {
    name: 'AveragePool 3×3/2, pads 1, count_include_pad 1 (tfjs: zero pad, then valid)',
    inputs: { x: [2, 2, 9, 8] },
    graph: (g) =>
      g.op('AveragePool', ['x'], {
        kernel_shape: ints([3, 3]),
        strides: ints([2, 2]),
        pads: ints([1, 1, 1, 1]),
        count_include_pad: attr.int(1),
      }),
    tfjs: (x) =>
      nchw(
        tf.avgPool(
          tf.pad(nhwc(x as tf.Tensor), [
            [0, 0],
            [1, 1],
            [1, 1],
            [0, 0],
          ]) as tf.Tensor4D,
          3,
          2,
          'valid',
        ),
      ),
  },
  {
    name: 'AveragePool ceil_mode, both count_include_pad (finite differences)',
    inputs: { x: [1, 2, 7, 7] },
    graph: (g) =>
      both(
        g,
        g.op('AveragePool', ['x'], {
          kernel_shape: ints([3, 2]),
          strides: ints([2, 2]),
          pads: ints([1, 0, 0, 0]),
          ceil_mode: attr.int(1),
        }),
        g.op('AveragePool', ['x'], {
          kernel_shape: ints([3, 2]),
          strides: ints([2, 2]),
          pads: ints([1, 0, 0, 0]),
          ceil_mode: attr.int(1),
          count_include_pad: attr.int(1),
        }),
      ),
  },
  {
    name: 'GlobalMaxPool',
    inputs: { x: [2, 3, 4, 5] },
    data: 'distinct',
    graph: (g) => g.op('GlobalMaxPool', ['x']),
    tfjs: (x) => tf.max(x as tf.Tensor, [2, 3], true),
  },
  {
    name: 'GlobalAveragePool',
    inputs: { x: [2, 3, 4, 5] },
    graph: (g) => g.op('GlobalAveragePool', ['x']),
    tfjs: (x) => tf.mean(x as tf.Tensor, [2, 3], true),
  },
];

const bnCases: NnCase[] = [
  {
    name: 'BatchNormalization, inference mode (gradients to X, scale, B, mean, var)',
    inputs: { x: [2, 3, 4, 5], s: [3], b: [3], m: [3], v: [3] },
    data: (name, n) =>
      name === 'v'
        ? randomFloats(n, 5).map((u) => 0.5 + Math.abs(u))
        : randomFloats(n, name.charCodeAt(0)),
    graph: (g) =>
      g.op('BatchNormalization', ['x', 's', 'b', 'm', 'v'], { epsilon: attr.float(1e-3) }),
    tfjs: (x, s, b, m, v) =>
      nchw(
        tf.batchNorm(
          nhwc(x as tf.Tensor) as tf.Tensor4D,
          m as tf.Tensor1D,
          v as tf.Tensor1D,
          b as tf.Tensor1D,
          s as tf.Tensor1D,
          1e-3,
        ),
      ),
  },
  {
    name: 'BatchNormalization, training mode (batch statistics), rank 3',
    inputs: { x: [4, 3, 5], s: [3], b: [3], m: [3], v: [3] },
    fixed: ['m', 'v'],
    data: (name, n) =>
      name === 'v'
        ? randomFloats(n, 5).map((u) => 0.5 + Math.abs(u))
        : randomFloats(n, name.charCodeAt(0)),
    graph: (g) =>
      g.node('BatchNormalization', ['x', 's', 'b', 'm', 'v'], 3, {
        training_mode: attr.int(1),
        epsilon: attr.float(1e-3),
      })[0] as string,
    tfjs: (x, s, b) => {
      const { mean, variance } = tf.moments(x as tf.Tensor, [0, 2], true);
      const r = (t: tf.Tensor) => tf.reshape(t, [3, 1]);
      return tf.add(
        tf.mul(
          tf.div(tf.sub(x as tf.Tensor, mean), tf.sqrt(tf.add(variance, 1e-3))),
          r(s as tf.Tensor),
        ),
        r(b as tf.Tensor),
      );
    },
  },
  {
    name: 'BatchNormalization, training mode, through the running statistics too',
    inputs: { x: [3, 2, 2, 3], s: [2], b: [2], m: [2], v: [2] },
    data: (name, n) =>
      name === 'v'
        ? randomFloats(n, 5).map((u) => 0.5 + Math.abs(u))
        : randomFloats(n, name.charCodeAt(0)),
    graph: (g) => {
      // onnxruntime writes the updated statistics into the running-statistics
      // inputs when its running outputs are not graph outputs: feed it copies.
      const copy = (v: string) => g.op('Add', [v, g.scalar(0)]);
      const [y, rm, rv] = g.node('BatchNormalization', ['x', 's', 'b', copy('m'), copy('v')], 3, {
        training_mode: attr.int(1),
        momentum: attr.float(0.8),
      }) as [string, string, string];
      const stats = g.op('Mul', [g.op('Add', [rm, g.op('Mul', [rv, rv])]), g.scalar(3)]);
      return g.op('Add', [y, g.op('Reshape', [stats, g.ints([2, 1, 1])])]);
    },
  },
];

describe('nn gradient rules: onnxruntime shapes, finite differences and tfjs', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  for (const c of [...convCases, ...poolCases, ...bnCases]) it(c.name, () => checkNnCase(c));
});

const resizeAttrs = (
  mode: string,
  transform: string,
  nearest?: string,
): Record<string, OnnxAttr> => ({
  mode: attr.string(mode),
  coordinate_transformation_mode: attr.string(transform),
  ...(nearest ? { nearest_mode: attr.string(nearest) } : {}),
});

const resizeCases: NnCase[] = [
  {
    name: 'Resize nearest ×2 (asymmetric, floor: the fast mode)',
    inputs: { x: [1, 3, 5, 5] },
    graph: (g) =>
      g.op(
        'Resize',
        ['x', '', g.initializer('scales', [1, 1, 2, 2], [4])],
        resizeAttrs('nearest', 'asymmetric', 'floor'),
      ),
    tfjs: (x) =>
      nchw(
        tf.image.resizeNearestNeighbor(nhwc(x as tf.Tensor) as tf.Tensor4D, [10, 10], false, false),
      ),
  },
  {
    name: 'Resize nearest ×(3, 2), width only by sizes (asymmetric, floor)',
    inputs: { x: [1, 2, 3, 4] },
    graph: (g) =>
      both(
        g,
        g.op(
          'Resize',
          ['x', '', g.initializer('scales', [1, 1, 3, 2], [4])],
          resizeAttrs('nearest', 'asymmetric', 'floor'),
        ),
        g.op(
          'Resize',
          ['x', '', '', g.ints([1, 2, 3, 12])],
          resizeAttrs('nearest', 'asymmetric', 'floor'),
        ),
      ),
  },
  {
    name: 'Resize nearest 5×7 → 8×4 (half_pixel, round_prefer_floor; finite differences)',
    inputs: { x: [1, 2, 5, 7] },
    graph: (g) =>
      g.op('Resize', ['x', '', '', g.ints([1, 2, 8, 4])], resizeAttrs('nearest', 'half_pixel')),
  },
  {
    name: 'Resize linear ×2 (half_pixel; tfjs bilinear with half-pixel centers)',
    inputs: { x: [1, 2, 4, 4] },
    graph: (g) =>
      g.op(
        'Resize',
        ['x', '', g.initializer('scales', [1, 1, 2, 2], [4])],
        resizeAttrs('linear', 'half_pixel'),
      ),
    tfjs: (x) =>
      nchw(tf.image.resizeBilinear(nhwc(x as tf.Tensor) as tf.Tensor4D, [8, 8], false, true)),
    // tfjs's bilinear gradient ignores halfPixelCenters: forward against tfjs, gradient against finite differences.
    tfjsForwardOnly: true,
  },
  {
    name: 'Resize linear 4×4 → 7×7 (align_corners; tfjs alignCorners)',
    inputs: { x: [1, 2, 4, 4] },
    graph: (g) =>
      g.op('Resize', ['x', '', '', g.ints([1, 2, 7, 7])], resizeAttrs('linear', 'align_corners')),
    tfjs: (x) =>
      nchw(tf.image.resizeBilinear(nhwc(x as tf.Tensor) as tf.Tensor4D, [7, 7], true, false)),
  },
  {
    name: 'Resize linear 5×5 → 8×8 (asymmetric; tfjs without half-pixel centers)',
    inputs: { x: [1, 2, 5, 5] },
    graph: (g) =>
      g.op('Resize', ['x', '', '', g.ints([1, 2, 8, 8])], resizeAttrs('linear', 'asymmetric')),
    tfjs: (x) =>
      nchw(tf.image.resizeBilinear(nhwc(x as tf.Tensor) as tf.Tensor4D, [8, 8], false, false)),
  },
  {
    name: 'Resize linear 3×5 → 7×4 (half_pixel, non-square; finite differences)',
    inputs: { x: [1, 2, 3, 5] },
    graph: (g) =>
      g.op('Resize', ['x', '', '', g.ints([1, 2, 7, 4])], resizeAttrs('linear', 'half_pixel')),
  },
  {
    name: 'Resize linear downsampling 8×7 → 5×3 (pytorch_half_pixel; finite differences)',
    inputs: { x: [1, 2, 8, 7] },
    graph: (g) =>
      g.op(
        'Resize',
        ['x', '', '', g.ints([1, 2, 5, 3])],
        resizeAttrs('linear', 'pytorch_half_pixel'),
      ),
  },
];

// tfjs's resize gradients are only right for square images and a batch of 1 (else wrong shapes or
// values), hence such tfjs cases; the rest against finite differences.
describe('Resize gradient rules', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  for (const c of resizeCases) it(c.name, () => checkNnCase(c));
});

/** The PyTorch convention by hand: each window's gradient goes to its first maximum (row-major), pads excluded. */
function firstMaxGradient(
  x: Float32Array,
  [n, c, h, w]: readonly [number, number, number, number],
  dy: Float32Array,
  k: number,
  s: number,
  pad: number,
): Float32Array {
  const oh = Math.floor((h + 2 * pad - k) / s) + 1;
  const ow = Math.floor((w + 2 * pad - k) / s) + 1;
  const dx = new Float32Array(x.length);
  for (let b = 0; b < n * c; b++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++) {
        let best = -1;
        for (let u = 0; u < k; u++)
          for (let v = 0; v < k; v++) {
            const r = i * s - pad + u;
            const q = j * s - pad + v;
            if (r < 0 || q < 0 || r >= h || q >= w) continue;
            const at = b * h * w + r * w + q;
            if (best < 0 || (x[at] as number) > (x[best] as number)) best = at;
          }
        dx[best] = (dx[best] as number) + (dy[b * oh * ow + i * ow + j] as number);
      }
  return dx;
}

describe('MaxPool ties: the first maximum of each window gets the gradient', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  // ReLU-like values: mostly exact zeros, and repeated positive values.
  const dims = [2, 3, 7, 7] as const;
  const size = dims.reduce((a, b) => a * b, 1);
  const x = randomFloats(size, 5).map((v) => (v < 0.3 ? 0 : Math.round(v * 4) / 4));
  const windows = [
    { name: '2×2/2 (tiled)', k: 2, s: 2, pad: 0, global: false },
    { name: '7×7 global (GlobalMaxPool)', k: 7, s: 1, pad: 0, global: true },
    { name: '3×3/2 overlapping, pads 1', k: 3, s: 2, pad: 1, global: false },
    { name: '3×3/1 overlapping', k: 3, s: 1, pad: 0, global: false },
  ];
  for (const { name, k, s, pad, global } of windows)
    it(name, async () => {
      const g = new OnnxGraphBuilder('ties');
      g.input('x', dims);
      const y = global
        ? g.op('GlobalMaxPool', ['x'])
        : g.op('MaxPool', ['x'], {
            kernel_shape: ints([k, k]),
            strides: ints([s, s]),
            pads: ints([pad, pad, pad, pad]),
          });
      const yd = g.dims(y) as number[];
      g.input('dy', yd);
      const loss = g.op('ReduceSum', [g.op('Mul', [y, 'dy'])], { keepdims: attr.int(0) });
      const grads = addGradients(g, loss, ['x']);
      g.output(grads.x as string);
      const dy = randomFloats(
        yd.reduce((a, b) => a * b, 1),
        9,
      );
      const out = await runGraphOnce(g.toBytes({ opset: 17 }), {
        x: { data: x, dims },
        dy: { data: dy, dims: yd },
      });
      const expected = firstMaxGradient(x, dims, dy, k, s, pad);
      expect(maxRelDiff(out[grads.x as string]?.data as Float32Array, expected)).toBeLessThan(1e-6);
      // tfjs's CPU maxPool gradient follows the same convention (strict > while scanning the window).
      const tfjsGrad = tf.tidy(() =>
        nchw(
          tf.grad((t: tf.Tensor) =>
            tf.sum(
              tf.mul(
                tf.maxPool(
                  t as tf.Tensor4D,
                  k,
                  s,
                  pad === 0
                    ? 'valid'
                    : [
                        [0, 0],
                        [pad, pad],
                        [pad, pad],
                        [0, 0],
                      ],
                ),
                nhwc(tf.tensor(dy, yd)),
              ),
            ),
          )(nhwc(tf.tensor(x, [...dims]))),
        ).dataSync(),
      );
      expect(maxRelDiff(tfjsGrad as Float32Array, expected)).toBeLessThan(1e-6);
    });
});

describe('BatchNormalization training mode: native node against batchNormTraining and by hand', () => {
  const dims = [4, 3, 5, 5] as const;
  const [n, c, h, w] = dims;
  const size = n * c * h * w;
  const values = {
    x: randomFloats(size, 21, 2),
    s: randomFloats(c, 22),
    b: randomFloats(c, 23),
    m: randomFloats(c, 24),
    v: randomFloats(c, 25).map((u) => 0.5 + Math.abs(u)),
    r: randomFloats(size, 26),
  };
  const momentum = 0.9; // ONNX's: the weight of the old running value
  const eps = 1e-5;
  const feeds = (): Record<string, HostTensor> => ({
    x: { data: values.x.slice(), dims },
    s: { data: values.s.slice(), dims: [c] },
    b: { data: values.b.slice(), dims: [c] },
    m: { data: values.m.slice(), dims: [c] },
    v: { data: values.v.slice(), dims: [c] },
    r: { data: values.r.slice(), dims },
  });
  /** Forward, running statistics and the gradients of Σ y·r with respect to x, scale and bias. */
  async function run(emitBn: (g: OnnxGraphBuilder) => { y: string; rm: string; rv: string }) {
    const g = new OnnxGraphBuilder('bn');
    g.input('x', dims);
    for (const p of ['s', 'b', 'm', 'v']) g.input(p, [c]);
    g.input('r', dims);
    const { y, rm, rv } = emitBn(g);
    const loss = g.op('ReduceSum', [g.op('Mul', [y, 'r'])], { keepdims: attr.int(0) });
    const grads = addGradients(g, loss, ['x', 's', 'b']);
    // Every output a graph output: onnxruntime then leaves the fed statistics alone.
    for (const o of [y, rm, rv, grads.x, grads.s, grads.b] as string[]) g.output(o);
    const out = await runGraphOnce(g.toBytes({ opset: 17 }), feeds());
    const get = (k: string) => out[k]?.data as Float32Array;
    return {
      y: get(y),
      rm: get(rm),
      rv: get(rv),
      dx: get(grads.x as string),
      ds: get(grads.s as string),
      db: get(grads.b as string),
    };
  }

  it('running statistics (ONNX: biased variance; PyTorch: unbiased), outputs and gradients', async () => {
    const native = await run((g) => {
      const [y, rm, rv] = g.node('BatchNormalization', ['x', 's', 'b', 'm', 'v'], 3, {
        training_mode: attr.int(1),
        momentum: attr.float(momentum),
        epsilon: attr.float(eps),
      }) as [string, string, string];
      return { y, rm, rv };
    });
    const primitive = await run((g) => {
      const bn = batchNormTraining(
        g,
        'x',
        { scale: 's', bias: 'b', runningMean: 'm', runningVar: 'v' },
        { epsilon: eps, momentum: 1 - momentum },
      );
      return { y: bn.y, rm: bn.runningMean, rv: bn.runningVar };
    });
    // By hand, in float64.
    const count = n * h * w;
    const y = new Float32Array(size);
    for (let k = 0; k < c; k++) {
      const at = (i: number, j: number) => i * c * h * w + k * h * w + j;
      let mean = 0;
      for (let i = 0; i < n; i++)
        for (let j = 0; j < h * w; j++) mean += values.x[at(i, j)] as number;
      mean /= count;
      let sq = 0;
      for (let i = 0; i < n; i++)
        for (let j = 0; j < h * w; j++) sq += ((values.x[at(i, j)] as number) - mean) ** 2;
      const biased = sq / count;
      const unbiased = sq / (count - 1);
      const m0 = values.m[k] as number;
      const v0 = values.v[k] as number;
      expect(native.rm[k]).toBeCloseTo(m0 * momentum + mean * (1 - momentum), 5);
      expect(native.rv[k]).toBeCloseTo(v0 * momentum + biased * (1 - momentum), 5);
      expect(primitive.rm[k]).toBeCloseTo(m0 * momentum + mean * (1 - momentum), 5);
      expect(primitive.rv[k]).toBeCloseTo(v0 * momentum + unbiased * (1 - momentum), 5);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < h * w; j++)
          y[at(i, j)] =
            (((values.x[at(i, j)] as number) - mean) / Math.sqrt(biased + eps)) *
              (values.s[k] as number) +
            (values.b[k] as number);
    }
    expect(maxRelDiff(native.y, y)).toBeLessThan(1e-5);
    expect(maxRelDiff(primitive.y, y)).toBeLessThan(1e-5);
    // The native node's gradient rule and the primitive ops' rules agree.
    expect(maxRelDiff(native.dx, primitive.dx)).toBeLessThan(1e-5);
    expect(maxRelDiff(native.ds, primitive.ds)).toBeLessThan(1e-5);
    expect(maxRelDiff(native.db, primitive.db)).toBeLessThan(1e-5);
  });
});

describe('second order: the gradient graphs are differentiable again', () => {
  const inputs = (dims: Record<string, readonly number[]>) =>
    Object.fromEntries(
      Object.entries(dims).map(([name, d], k) => [
        name,
        {
          dims: d,
          data: randomFloats(
            d.reduce((a, b) => a * b, 1),
            41 + k,
          ),
        },
      ]),
    );
  const squaredNorm = (g: OnnxGraphBuilder, v: string) =>
    g.op('ReduceSum', [g.op('Mul', [v, v])], { keepdims: attr.int(0) });

  it('∂/∂x of Σ (∂L/∂W)², L = Σ tanh(Conv(x, W, b))·r, stride 2, odd input (vs finite differences)', async () => {
    const result = await gradCheck({
      inputs: inputs({ x: [2, 3, 7, 7], w: [4, 3, 3, 3], b: [4] }),
      build: (g) => {
        const y = g.op('Conv', ['x', 'w', 'b'], {
          strides: ints([2, 2]),
          pads: ints([1, 1, 1, 1]),
        });
        const loss = projectToScalar(g, g.op('Tanh', [y]));
        const first = addGradients(g, loss, ['w'], { prefix: 'first:' });
        return squaredNorm(g, first.w as string);
      },
      coordinates: 40,
    });
    expect(result.maxRelError).toBeLessThan(1e-2);
  });

  it('through the input gradient too (ConvTranspose and its rules), grouped, with x and W', async () => {
    const result = await gradCheck({
      inputs: inputs({ x: [2, 4, 6, 5], w: [6, 2, 3, 3] }),
      build: (g) => {
        const y = g.op('Conv', ['x', 'w'], {
          group: attr.int(2),
          strides: ints([2, 2]),
          pads: ints([1, 0, 1, 1]),
        });
        const loss = projectToScalar(g, g.op('Tanh', [y]));
        const first = addGradients(g, loss, ['x', 'w'], { prefix: 'first:' });
        return g.op('Add', [squaredNorm(g, first.w as string), squaredNorm(g, first.x as string)]);
      },
      coordinates: 40,
    });
    expect(result.maxRelError).toBeLessThan(1e-2);
  });

  it('through stride-1 gradients (flipped Conv, row-flattened windows) and training-mode batch norm', async () => {
    const result = await gradCheck({
      inputs: {
        ...inputs({ x: [3, 4, 5, 5], w: [4, 2, 3, 3], w2: [6, 4, 3, 3] }),
        s: { dims: [4], data: new Float32Array([1, 0.5, 2, 1.5]) },
        bb: { dims: [4], data: new Float32Array([0.1, -0.2, 0.3, 0]) },
        m: { dims: [4], data: new Float32Array(4), wrt: false },
        v: { dims: [4], data: new Float32Array(4).fill(1), wrt: false },
      },
      build: (g) => {
        const c = g.op('Conv', ['x', 'w'], { group: attr.int(2), pads: ints([1, 0, 1, 2]) });
        const bn = batchNormTraining(g, c, {
          scale: 's',
          bias: 'bb',
          runningMean: 'm',
          runningVar: 'v',
        });
        const c2 = g.op('Conv', [g.op('Tanh', [bn.y]), 'w2'], { pads: ints([1, 1, 1, 1]) });
        const loss = projectToScalar(g, g.op('Tanh', [c2]));
        const first = addGradients(g, loss, ['x', 'w', 's', 'w2'], { prefix: 'first:' });
        return g.op('Sum', [
          squaredNorm(g, first.w as string),
          squaredNorm(g, first.x as string),
          squaredNorm(g, first.s as string),
          squaredNorm(g, first.w2 as string),
        ]);
      },
      eps: 1e-3,
      coordinates: 40,
    });
    expect(result.maxRelError).toBeLessThan(1e-2);
  });

  it('through pools, batch norm and resize (a small CNN), with respect to x and W', async () => {
    const result = await gradCheck({
      inputs: {
        ...inputs({ x: [2, 2, 8, 8], w: [4, 2, 3, 3] }),
        s: { dims: [4], data: new Float32Array([1, 0.5, 2, 1.5]) },
        bb: { dims: [4], data: new Float32Array([0.1, -0.2, 0.3, 0]), wrt: false },
        m: { dims: [4], data: new Float32Array([0, 0.1, -0.1, 0.2]), wrt: false },
        v: { dims: [4], data: new Float32Array([1, 0.5, 2, 1]), wrt: false },
      },
      build: (g) => {
        const c = g.op('Conv', ['x', 'w'], { pads: ints([1, 1, 1, 1]) });
        const bn = g.op('BatchNormalization', [c, 's', 'bb', 'm', 'v']);
        const t = g.op('Tanh', [bn]);
        const mp = g.op('MaxPool', [t], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) });
        const ap = g.op('AveragePool', [mp], {
          kernel_shape: ints([3, 3]),
          strides: ints([2, 2]),
          pads: ints([1, 1, 1, 1]),
        });
        const up = g.op(
          'Resize',
          [ap, '', g.initializer('scales', [1, 1, 2, 2], [4])],
          resizeAttrs('linear', 'half_pixel'),
        );
        const gap = g.op('GlobalAveragePool', [g.op('Mul', [up, up])]);
        const loss = projectToScalar(g, gap);
        const first = addGradients(g, loss, ['w'], { prefix: 'first:' });
        return squaredNorm(g, first.w as string);
      },
      eps: 1e-3,
      coordinates: 40,
    });
    expect(result.maxRelError).toBeLessThan(1e-2);
  });
});

describe('a symbolic batch dimension', () => {
  it('a conv/bn/pool chain with batch "N" computes what the same chain with a fixed batch does', async () => {
    const batch = 3;
    const build = (n: number | string) => {
      const g = new OnnxGraphBuilder('symbolic');
      g.input('x', [n, 3, 9, 9]);
      g.input('w', [4, 3, 3, 3]);
      g.input('dw', [4, 1, 3, 3]);
      const c = g.op('Conv', ['x', 'w'], { strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) });
      const d = g.op('Conv', [c, 'dw'], { group: attr.int(4), pads: ints([1, 1, 1, 1]) });
      const bn = g.node(
        'BatchNormalization',
        [d, ...['s', 'b', 'm', 'v'].map((p) => g.initializer(p, [1, 0.5, 2, 1], [4]))],
        3,
        {
          training_mode: attr.int(1),
        },
      )[0] as string;
      const mp = g.op('MaxPool', [g.op('Relu', [bn])], {
        kernel_shape: ints([2, 2]),
        strides: ints([2, 2]),
      });
      const mp3 = g.op('MaxPool', [bn], { kernel_shape: ints([3, 3]), strides: ints([2, 2]) });
      const ap = g.op('AveragePool', [bn], { kernel_shape: ints([3, 3]), strides: ints([2, 2]) });
      const gap = g.op('GlobalAveragePool', [
        g.op('Mul', [g.op('Add', [mp, g.op('Add', [mp3, ap])]), mp]),
      ]);
      const loss = g.op('ReduceSum', [gap], { keepdims: attr.int(0) });
      const grads = addGradients(g, loss, ['x', 'w', 'dw']);
      g.output(loss, []);
      for (const k of ['x', 'w', 'dw']) g.output(grads[k] as string);
      return {
        bytes: g.toBytes({ opset: 17 }),
        names: ['x', 'w', 'dw'].map((k) => grads[k] as string),
      };
    };
    const feeds: Record<string, HostTensor> = {
      x: { data: randomFloats(batch * 3 * 81, 51), dims: [batch, 3, 9, 9] },
      w: { data: randomFloats(4 * 27, 52), dims: [4, 3, 3, 3] },
      dw: { data: randomFloats(36, 53), dims: [4, 1, 3, 3] },
    };
    const sym = build('N');
    const fixed = build(batch);
    const a = await runGraphOnce(sym.bytes, feeds);
    const b = await runGraphOnce(fixed.bytes, feeds);
    sym.names.forEach((name, i) => {
      const other = b[fixed.names[i] as string] as HostTensor;
      expect(a[name]?.dims).toEqual(other.dims);
      expect(maxRelDiff(a[name]?.data as Float32Array, other.data as Float32Array)).toBeLessThan(
        1e-6,
      );
    });
  });
});

/**
 * Opt-in timing (NN_BENCH=1): forward + backward of a 3×3 16→32 conv with
 * bias on [64, 16, 28, 28] in onnxruntime, one thread.
 */
describe.runIf(process.env.NN_BENCH)('timing', () => {
  it('conv 3×3 16→32 on [64, 16, 28, 28]: forward, and forward + backward', async () => {
    const [N, C, M, H] = [64, 16, 32, 28];
    const feeds: Record<string, HostTensor> = {
      x: { data: randomFloats(N * C * H * H, 1), dims: [N, C, H, H] },
      w: { data: randomFloats(M * C * 9, 2), dims: [M, C, 3, 3] },
      b: { data: randomFloats(M, 3), dims: [M] },
      r: { data: randomFloats(N * M * H * H, 4), dims: [N, M, H, H] },
    };
    for (const backward of [false, true]) {
      const g = new OnnxGraphBuilder('bench');
      g.input('x', [N, C, H, H]);
      g.input('w', [M, C, 3, 3]);
      g.input('b', [M]);
      g.input('r', [N, M, H, H]);
      const y = g.op('Conv', ['x', 'w', 'b'], { pads: ints([1, 1, 1, 1]) });
      const loss = g.op('ReduceSum', [g.op('Mul', [y, 'r'])], { keepdims: attr.int(0) });
      g.output(loss, []);
      if (backward) {
        const grads = addGradients(g, loss, ['x', 'w', 'b']);
        for (const k of ['x', 'w', 'b']) g.output(grads[k] as string);
      }
      const session = await createSession(g.toBytes({ opset: 17 }), { intraOpNumThreads: 1 });
      for (let i = 0; i < 3; i++) await runSession(session, feeds);
      const times: number[] = [];
      for (let i = 0; i < 10; i++) {
        const t0 = performance.now();
        await runSession(session, feeds);
        times.push(performance.now() - t0);
      }
      times.sort((p, q) => p - q);
      console.log(
        `conv ${backward ? 'forward + backward' : 'forward'}: median ${times[5]?.toFixed(1)} ms, min ${times[0]?.toFixed(1)} ms`,
      );
      await session.release();
    }
  });
});
