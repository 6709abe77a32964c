/**
 * Every gradient rule of the elementwise, linear, shape and reduction
 * families against finite differences and against tfjs's gradient of the
 * same function on the same values.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { attr } from '../attr.js';
import type { OnnxGraphBuilder } from '../builder.js';
import { gradCheck, projectToScalar, randomFloats } from '../grad-check.js';

export interface OpCase {
  name: string;
  inputs: Record<string, readonly number[]>;
  graph: (g: OnnxGraphBuilder) => string;
  /** The same function in tfjs, when tfjs has the op (it has no matrix inverse). */
  tfjs?: (...xs: tf.Tensor[]) => tf.Tensor;
  /** Keep inputs away from kinks (ReLU at 0, Clip bounds) and poles (Log, Div). */
  positive?: boolean;
}

const cases: OpCase[] = [
  {
    name: 'Add (broadcast)',
    inputs: { a: [2, 3], b: [3] },
    graph: (g) => g.op('Add', ['a', 'b']),
    tfjs: (a, b) => tf.add(a as tf.Tensor, b as tf.Tensor),
  },
  {
    name: 'Sub (broadcast over rows)',
    inputs: { a: [2, 3], b: [2, 1] },
    graph: (g) => g.op('Sub', ['a', 'b']),
    tfjs: (a, b) => tf.sub(a as tf.Tensor, b as tf.Tensor),
  },
  {
    name: 'Mul (broadcast)',
    inputs: { a: [2, 3, 4], b: [3, 1] },
    graph: (g) => g.op('Mul', ['a', 'b']),
    tfjs: (a, b) => tf.mul(a as tf.Tensor, b as tf.Tensor),
  },
  {
    name: 'Mul (a value by itself)',
    inputs: { x: [3, 4] },
    graph: (g) => g.op('Mul', ['x', 'x']),
    tfjs: (x) => tf.mul(x as tf.Tensor, x as tf.Tensor),
  },
  {
    name: 'centred variance times the input (broadcast gradients join by broadcasting)',
    inputs: { x: [3, 2, 4] },
    graph: (g) => {
      const mean = (v: string) =>
        g.op('ReduceMean', [v], { axes: attr.ints([0, 2]), keepdims: attr.int(1) });
      const c = g.op('Sub', ['x', mean('x')]);
      return g.op('Mul', [g.op('Mul', [c, mean(g.op('Mul', [c, c]))]), 'x']);
    },
    tfjs: (x) => {
      const t = x as tf.Tensor;
      const c = tf.sub(t, tf.mean(t, [0, 2], true));
      return tf.mul(tf.mul(c, tf.mean(tf.mul(c, c), [0, 2], true)), t);
    },
  },
  {
    name: 'Div',
    inputs: { a: [3, 2], b: [3, 2] },
    graph: (g) => g.op('Div', ['a', 'b']),
    tfjs: (a, b) => tf.div(a as tf.Tensor, b as tf.Tensor),
    positive: true,
  },
  {
    name: 'Sum of three',
    inputs: { a: [2, 3], b: [3], c: [2, 3] },
    graph: (g) => g.op('Sum', ['a', 'b', 'c']),
    tfjs: (a, b, c) =>
      tf.addN([a as tf.Tensor, tf.broadcastTo(b as tf.Tensor, [2, 3]), c as tf.Tensor]),
  },
  {
    name: 'Relu, Neg',
    inputs: { x: [4, 5] },
    graph: (g) => g.op('Neg', [g.op('Relu', ['x'])]),
    tfjs: (x) => tf.neg(tf.relu(x as tf.Tensor)),
  },
  {
    name: 'Sigmoid, Tanh',
    inputs: { x: [3, 4] },
    graph: (g) => g.op('Add', [g.op('Sigmoid', ['x']), g.op('Tanh', ['x'])]),
    tfjs: (x) => tf.add(tf.sigmoid(x as tf.Tensor), tf.tanh(x as tf.Tensor)),
  },
  {
    name: 'Exp, Log, Sqrt, Reciprocal',
    inputs: { x: [6] },
    graph: (g) =>
      g.op('Sum', [
        g.op('Exp', ['x']),
        g.op('Log', ['x']),
        g.op('Sqrt', ['x']),
        g.op('Reciprocal', ['x']),
      ]),
    tfjs: (x) => {
      const t = x as tf.Tensor;
      return tf.addN([tf.exp(t), tf.log(t), tf.sqrt(t), tf.reciprocal(t)]);
    },
    positive: true,
  },
  {
    name: 'Pow (both operands)',
    inputs: { x: [5], p: [5] },
    graph: (g) => g.op('Pow', ['x', 'p']),
    tfjs: (x, p) => tf.pow(x as tf.Tensor, p as tf.Tensor),
    positive: true,
  },
  {
    name: 'Clip (ReLU6)',
    inputs: { x: [8] },
    graph: (g) => g.op('Clip', ['x', g.scalar(-0.5), g.scalar(0.5)]),
    tfjs: (x) => tf.clipByValue(x as tf.Tensor, -0.5, 0.5),
  },
  {
    name: 'Gemm (transA, transB, α, β, bias)',
    inputs: { a: [3, 2], b: [4, 3], c: [4] },
    graph: (g) =>
      g.op('Gemm', ['a', 'b', 'c'], {
        transA: attr.int(1),
        transB: attr.int(1),
        alpha: attr.float(0.5),
        beta: attr.float(2),
      }),
    tfjs: (a, b, c) =>
      tf.add(
        tf.mul(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, true, true), 0.5),
        tf.mul(c as tf.Tensor, 2),
      ),
  },
  {
    name: 'Gemm (plain)',
    inputs: { a: [2, 3], b: [3, 4], c: [4] },
    graph: (g) => g.op('Gemm', ['a', 'b', 'c']),
    tfjs: (a, b, c) => tf.add(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), c as tf.Tensor),
  },
  {
    name: 'MatMul (batched, broadcast)',
    inputs: { a: [2, 3, 4], b: [4, 5] },
    graph: (g) => g.op('MatMul', ['a', 'b']),
    tfjs: (a, b) =>
      tf.matMul(a as tf.Tensor3D, tf.broadcastTo(b as tf.Tensor, [2, 4, 5]) as tf.Tensor3D),
  },
  {
    name: 'Reshape, Flatten, Transpose',
    inputs: { x: [2, 3, 4] },
    graph: (g) =>
      g.op('Flatten', [
        g.op('Transpose', [g.op('Reshape', ['x', g.ints([2, 4, 3])])], {
          perm: attr.ints([0, 2, 1]),
        }),
      ]),
    tfjs: (x) =>
      tf.reshape(tf.transpose(tf.reshape(x as tf.Tensor, [2, 4, 3]), [0, 2, 1]), [2, 12]),
  },
  {
    name: 'Concat, Slice, Pad',
    inputs: { a: [2, 3], b: [2, 2] },
    graph: (g) => {
      const c = g.op('Concat', ['a', 'b'], { axis: attr.int(1) });
      const s = g.op('Slice', [c, g.ints([1]), g.ints([4]), g.ints([1])]);
      return g.op('Pad', [s, g.ints([0, 1, 1, 0])]);
    },
    tfjs: (a, b) =>
      tf.pad(tf.slice(tf.concat([a as tf.Tensor, b as tf.Tensor], 1), [0, 1], [2, 3]), [
        [0, 1],
        [1, 0],
      ]),
  },
  {
    name: 'Unsqueeze, Squeeze, Expand',
    inputs: { x: [3] },
    graph: (g) =>
      g.op('Squeeze', [
        g.op('Expand', [g.op('Unsqueeze', ['x', g.ints([0])]), g.ints([4, 3])]),
        g.ints([]),
      ]),
    tfjs: (x) => tf.broadcastTo(tf.expandDims(x as tf.Tensor, 0), [4, 3]),
  },
  {
    name: 'ReduceSum (axes input), ReduceMean (keepdims)',
    inputs: { x: [2, 3, 4] },
    graph: (g) =>
      g.op('Add', [
        g.op('ReduceSum', ['x', g.ints([2])], { keepdims: attr.int(0) }),
        g.op('ReduceMean', ['x'], { axes: attr.ints([2]), keepdims: attr.int(0) }),
      ]),
    tfjs: (x) => tf.add(tf.sum(x as tf.Tensor, 2), tf.mean(x as tf.Tensor, 2)),
  },
  {
    name: 'LogSoftmax, Softmax',
    inputs: { x: [3, 5] },
    graph: (g) =>
      g.op('Add', [
        g.op('LogSoftmax', ['x'], { axis: attr.int(1) }),
        g.op('Softmax', ['x'], { axis: attr.int(1) }),
      ]),
    tfjs: (x) => tf.add(tf.logSoftmax(x as tf.Tensor), tf.softmax(x as tf.Tensor)),
  },
  {
    name: 'Inverse (onnxruntime contrib), batched',
    inputs: { a: [2, 3, 3] },
    // Well conditioned: the random part is small against 2·I.
    graph: (g) =>
      g.op('Inverse', [
        g.op('Add', ['a', g.initializer('eye2', [2, 0, 0, 0, 2, 0, 0, 0, 2], [3, 3])]),
      ]),
  },
  {
    name: 'Where (mask from a comparison)',
    inputs: { a: [6], b: [6] },
    graph: (g) => g.op('Where', [g.op('Greater', ['a', 'b']), 'a', 'b']),
    // tfjs has no gradient for Greater: its maximum is the same function off ties.
    tfjs: (a, b) => tf.maximum(a as tf.Tensor, b as tf.Tensor),
  },
];

function inputData(c: OpCase, _name: string, dims: readonly number[], k: number): Float32Array {
  const n = dims.reduce((a, b) => a * b, 1);
  const base = randomFloats(n, 11 + 31 * k, 1);
  if (c.positive) return base.map((v) => 0.5 + Math.abs(v));
  // Away from 0 (ReLU's kink) by at least 0.05.
  return base.map((v) => (Math.abs(v) < 0.05 ? v + 0.1 : v));
}

/** tfjs's gradient of Σ f(x)·w, with the same projection weights the graph uses. */
function tfjsGradients(
  c: OpCase,
  values: Record<string, Float32Array>,
): Record<string, Float32Array> {
  return tf.tidy(() => {
    const names = Object.keys(c.inputs);
    const xs = names.map((n) =>
      tf.tensor(values[n] as Float32Array, [...(c.inputs[n] as number[])]),
    );
    const f = (...a: tf.Tensor[]) => {
      const y = (c.tfjs as NonNullable<OpCase['tfjs']>)(...a);
      const w = tf.tensor(randomFloats(y.size, 7), y.shape);
      return tf.sum(tf.mul(y, w));
    };
    const grads = tf.grads(f)(xs);
    return Object.fromEntries(
      names.map((n, i) => [n, (grads[i] as tf.Tensor).dataSync() as Float32Array]),
    );
  });
}

export async function checkOpCase(c: OpCase): Promise<void> {
  const values: Record<string, Float32Array> = {};
  Object.entries(c.inputs).forEach(([name, dims], k) => {
    values[name] = inputData(c, name, dims, k);
  });
  const result = await gradCheck({
    inputs: Object.fromEntries(
      Object.entries(c.inputs).map(([n, dims]) => [n, { dims, data: values[n] as Float32Array }]),
    ),
    build: (g) => projectToScalar(g, c.graph(g)),
  });
  expect(result.maxRelError).toBeLessThan(2e-2);
  if (!c.tfjs) return;
  const ref = tfjsGradients(c, values);
  for (const [name, grad] of Object.entries(result.analytic)) {
    const r = ref[name] as Float32Array;
    expect(grad.length).toBe(r.length);
    let worst = 0;
    grad.forEach((v, i) => {
      worst = Math.max(
        worst,
        Math.abs(v - (r[i] as number)) / Math.max(1, Math.abs(r[i] as number)),
      );
    });
    expect(worst, `${c.name}: ∂/∂${name} vs tfjs`).toBeLessThan(1e-5);
  }
}

describe('gradient rules: finite differences and tfjs', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  for (const c of cases) it(c.name, () => checkOpCase(c));
});
