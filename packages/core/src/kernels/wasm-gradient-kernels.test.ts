import * as tf from '@tensorflow/tfjs-core';
// The tfjs union package registers the cpu backend and every op's gradient
// (tfjs-core alone registers no gradients); the wasm backend registers itself.
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  registerWasmGradientKernels,
  useFastWasmConv2DBackpropInput,
  WASM_GRADIENT_KERNEL_NAMES,
} from './wasm-gradient-kernels.js';

// Gradients are checked against the 'cpu' backend (which has all four kernels)
// on the same data: max |wasm - cpu| <= TOL * max(1, max |cpu|).
const TOL = 1e-4;

type Pad =
  | 'same'
  | 'valid'
  | number
  | [[number, number], [number, number], [number, number], [number, number]];
type Backend = 'cpu' | 'wasm';

/** Worst relative difference seen per group, printed at the end. */
const worst: Record<string, number> = {};

function rand(n: number, seed: number): Float32Array {
  // mulberry32
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  }
  return out;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

interface Out {
  shape: number[];
  values: Float32Array;
}

/** Runs `f` in a tidy on `backend` and returns copies of the outputs. */
async function on(backend: Backend, f: () => tf.Tensor[]): Promise<Out[]> {
  expect(await tf.setBackend(backend)).toBe(true);
  const outs = tf.tidy(f);
  const res = outs.map((t) => ({
    shape: t.shape,
    values: Float32Array.from(t.dataSync() as ArrayLike<number>),
  }));
  tf.dispose(outs);
  return res;
}

function relDiff(actual: Float32Array, expected: Float32Array): number {
  expect(actual.length).toBe(expected.length);
  let maxDiff = 0;
  let maxMag = 1;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] as number;
    const d = Math.abs((actual[i] as number) - e);
    if (!(d <= maxDiff)) maxDiff = d; // NaN-propagating
    maxMag = Math.max(maxMag, Math.abs(e));
  }
  return maxDiff / maxMag;
}

function check(group: string, label: string, actual: Out[], expected: Out[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    const e = expected[i] as Out;
    expect(a.shape, `${label} output ${i} shape`).toEqual(e.shape);
    const d = relDiff(a.values, e.values);
    worst[group] = Math.max(worst[group] ?? 0, d);
    expect(d, `${label} output ${i}`).toBeLessThanOrEqual(TOL);
  });
}

/** Gradients of sum(op(x, w) * r) w.r.t. x and w, where r is random. */
function lossGrads(
  op: (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D,
  xShape: number[],
  wShape: number[],
  seed: number,
): () => tf.Tensor[] {
  const xv = rand(size(xShape), seed);
  const wv = rand(size(wShape), seed + 1);
  return () => {
    const x = tf.tensor4d(xv, xShape as [number, number, number, number]);
    const w = tf.tensor4d(wv, wShape as [number, number, number, number]);
    const yShape = tf.tidy(() => op(x, w).shape);
    const r = tf.tensor(rand(size(yShape), seed + 2), yShape);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(op(a as tf.Tensor4D, b as tf.Tensor4D), r)),
    );
    return g([x, w]);
  };
}

const EXPLICIT: Pad = [
  [0, 0],
  [2, 0],
  [1, 3],
  [0, 0],
];
const PADS: Pad[] = ['same', 'valid', 1, EXPLICIT];

let savedIsTest = false;

beforeAll(async () => {
  expect(tf.getGradient(tf.Conv2D)).toBeDefined();
  expect(await tf.setBackend('wasm')).toBe(true);
  expect(await tf.setBackend('cpu')).toBe(true);
  registerWasmGradientKernels();
  // Makes the engine check every kernel for leaked backend data ids.
  savedIsTest = tf.env().getBool('IS_TEST');
  tf.env().set('IS_TEST', true);
});

afterAll(() => {
  tf.env().set('IS_TEST', savedIsTest);
  console.log(
    'max relative |wasm - cpu| per group:\n' +
      Object.entries(worst)
        .map(([k, v]) => `  ${k}: ${v.toExponential(2)}`)
        .join('\n'),
  );
});

describe('registerWasmGradientKernels', () => {
  it('registers the four kernels for wasm and is idempotent', () => {
    registerWasmGradientKernels();
    registerWasmGradientKernels();
    expect([...WASM_GRADIENT_KERNEL_NAMES].sort()).toEqual(
      [
        'Conv2DBackpropFilter',
        'DepthwiseConv2dNativeBackpropFilter',
        'DepthwiseConv2dNativeBackpropInput',
        'UnsortedSegmentSum',
      ].sort(),
    );
    for (const name of WASM_GRADIENT_KERNEL_NAMES) expect(tf.getKernel(name, 'wasm')).toBeDefined();
  });
});

const CONV_KERNEL_CONFIGS: {
  x: [number, number, number, number];
  f: [number, number, number, number];
  s: number | [number, number];
  pad: Pad;
  fmt: 'NHWC' | 'NCHW';
  round?: 'floor' | 'round' | 'ceil';
}[] = [
  { x: [2, 3, 7, 6], f: [3, 3, 3, 4], s: 2, pad: 'same', fmt: 'NCHW' },
  { x: [2, 3, 7, 6], f: [3, 2, 3, 4], s: [1, 2], pad: 'valid', fmt: 'NCHW' },
  {
    x: [1, 2, 6, 7],
    f: [3, 3, 2, 3],
    s: 2,
    pad: [
      [0, 0],
      [0, 0],
      [1, 2],
      [2, 0],
    ],
    fmt: 'NCHW',
  },
  { x: [2, 7, 6, 3], f: [3, 3, 3, 2], s: 2, pad: 1, fmt: 'NHWC', round: 'ceil' },
  { x: [2, 8, 8, 3], f: [3, 3, 3, 2], s: 2, pad: 0, fmt: 'NHWC', round: 'floor' },
  { x: [2, 8, 6, 3], f: [2, 2, 3, 2], s: 3, pad: 1, fmt: 'NHWC', round: 'round' },
  { x: [1, 4, 5, 2], f: [2, 2, 2, 3], s: 1, pad: 3, fmt: 'NHWC' }, // pad > kernel - 1
];

const CONV_CASES: {
  b: number;
  s: number | [number, number];
  pad: Pad;
  k: [number, number];
  hw: [number, number];
  ci: number;
  co: number;
}[] = [];
{
  let i = 0;
  for (const b of [1, 3])
    for (const s of [1, 2])
      for (const pad of PADS)
        for (const k of [1, 3, 5])
          for (const [ci, co] of [
            [1, 3],
            [3, 5],
            [5, 1],
          ] as const) {
            const hw: [number, number] = i++ % 2 === 0 ? [7, 9] : [8, 5];
            if (pad === 'valid' && (hw[0] < k || hw[1] < k)) continue;
            CONV_CASES.push({ b, s, pad, k: [k, k], hw, ci, co });
          }
  // Odd shapes: non-square kernels, per-axis strides, tiny inputs, big pads.
  CONV_CASES.push({ b: 2, s: [2, 1], pad: 'same', k: [3, 2], hw: [9, 6], ci: 3, co: 4 });
  CONV_CASES.push({ b: 2, s: [1, 3], pad: 'valid', k: [2, 4], hw: [5, 11], ci: 2, co: 3 });
  CONV_CASES.push({ b: 1, s: 3, pad: 2, k: [5, 5], hw: [4, 4], ci: 2, co: 2 });
  CONV_CASES.push({ b: 2, s: 2, pad: 'same', k: [3, 3], hw: [1, 1], ci: 4, co: 3 });
  CONV_CASES.push({ b: 2, s: 2, pad: 4, k: [3, 3], hw: [5, 6], ci: 2, co: 3 });
}

// Run once with wasm's stock Conv2DBackpropInput and once with the opt-in
// XNNPACK version (useFastWasmConv2DBackpropInput).
describe.each([
  ['stock', false],
  ['fast', true],
] as const)('conv2d gradients, wasm vs cpu (%s Conv2DBackpropInput)', (mode, fast) => {
  const group = `conv2d (${mode} input grad)`;
  beforeAll(() => useFastWasmConv2DBackpropInput(fast));
  afterAll(() => useFastWasmConv2DBackpropInput(false));

  it(`matches cpu on ${CONV_CASES.length} configurations`, async () => {
    let seed = 100;
    for (const c of CONV_CASES) {
      seed += 10;
      const f = lossGrads(
        (x, w) => tf.conv2d(x, w, c.s, c.pad),
        [c.b, c.hw[0], c.hw[1], c.ci],
        [c.k[0], c.k[1], c.ci, c.co],
        seed,
      );
      check(group, JSON.stringify(c), await on('wasm', f), await on('cpu', f));
    }
  });

  it('matches cpu through conv2dTranspose (whose filter gradient is a Conv2DBackpropFilter)', async () => {
    for (const [s, pad] of [
      [1, 'same'],
      [2, 'same'],
      [2, 'valid'],
    ] as const) {
      const xShape = [2, 5, 4, 3]; // the transposed conv's input
      const wShape = [3, 3, 4, 3]; // [fh, fw, outDepth, inDepth]
      const outShape: [number, number, number, number] =
        s === 1 ? [2, 5, 4, 4] : pad === 'same' ? [2, 10, 8, 4] : [2, 11, 9, 4];
      const f = lossGrads(
        (x, w) => tf.conv2dTranspose(x, w, outShape, s, pad),
        xShape,
        wShape,
        7 + s,
      );
      check(group, `conv2dTranspose s=${s} ${pad}`, await on('wasm', f), await on('cpu', f));
    }
  });

  it('backprop kernels match cpu for NCHW, dimRoundingMode and explicit pads', async () => {
    let seed = 900;
    for (const c of CONV_KERNEL_CONFIGS) {
      const fmt = tf.backend_util.convertConv2DDataFormat(c.fmt);
      const info = tf.backend_util.computeConv2DInfo(c.x, c.f, c.s, 1, c.pad, c.round, false, fmt);
      seed += 3;
      const xv = rand(size(c.x), seed);
      const wv = rand(size(c.f), seed + 1);
      const dyv = rand(size(info.outShape), seed + 2);
      const attrs = { strides: c.s, pad: c.pad, dataFormat: c.fmt, dimRoundingMode: c.round };
      const f = () => {
        const x = tf.tensor(xv, c.x);
        const w = tf.tensor(wv, c.f);
        const dy = tf.tensor(dyv, info.outShape);
        return [
          tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, {
            ...attrs,
            filterShape: c.f,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
          tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter: w }, {
            ...attrs,
            inputShape: c.x,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
        ];
      };
      check(group, JSON.stringify(c), await on('wasm', f), await on('cpu', f));
    }
  });

  it('works under tf.grad (single argument) inside tf.tidy', async () => {
    const xv = rand(2 * 6 * 6 * 3, 1);
    const wv = rand(3 * 3 * 3 * 4, 2);
    const f = () => {
      const x = tf.tensor4d(xv, [2, 6, 6, 3]);
      const w = tf.tensor4d(wv, [3, 3, 3, 4]);
      return [
        tf.grad((ww: tf.Tensor) => tf.sum(tf.square(tf.conv2d(x, ww as tf.Tensor4D, 1, 'same'))))(
          w,
        ),
        tf.grad((xx: tf.Tensor) => tf.sum(tf.square(tf.conv2d(xx as tf.Tensor4D, w, 2, 'valid'))))(
          x,
        ),
      ];
    };
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const got = await on('wasm', f);
    expect(tf.memory().numTensors).toBe(before);
    check(group, 'tf.grad', got, await on('cpu', f));
  });
});

describe('useFastWasmConv2DBackpropInput', () => {
  it('swaps the kernel in and out idempotently', () => {
    const stock = tf.getKernel(tf.Conv2DBackpropInput, 'wasm');
    expect(stock).toBeDefined();
    useFastWasmConv2DBackpropInput(true);
    useFastWasmConv2DBackpropInput(true);
    const fast = tf.getKernel(tf.Conv2DBackpropInput, 'wasm');
    expect(fast?.kernelFunc).not.toBe(stock?.kernelFunc);
    useFastWasmConv2DBackpropInput(false);
    useFastWasmConv2DBackpropInput(false);
    expect(tf.getKernel(tf.Conv2DBackpropInput, 'wasm')?.kernelFunc).toBe(stock?.kernelFunc);
  });
});

describe('depthwiseConv2d gradients (wasm vs cpu)', () => {
  const cases: {
    b: number;
    s: number;
    pad: Pad;
    k: number;
    hw: [number, number];
    ci: number;
    m: number;
  }[] = [];
  let i = 0;
  for (const b of [1, 3])
    for (const s of [1, 2])
      for (const pad of PADS)
        for (const k of [1, 3, 5])
          for (const ci of [1, 3, 5])
            for (const m of [1, 2]) {
              const hw: [number, number] = i++ % 2 === 0 ? [7, 9] : [8, 5];
              if (pad === 'valid' && (hw[0] < k || hw[1] < k)) continue;
              cases.push({ b, s, pad, k, hw, ci, m });
            }

  it(`matches cpu on ${cases.length} configurations`, async () => {
    let seed = 5000;
    for (const c of cases) {
      seed += 10;
      const f = lossGrads(
        (x, w) => tf.depthwiseConv2d(x, w, c.s, c.pad as 'same'),
        [c.b, c.hw[0], c.hw[1], c.ci],
        [c.k, c.k, c.ci, c.m],
        seed,
      );
      check('depthwise', JSON.stringify(c), await on('wasm', f), await on('cpu', f));
    }
  });

  it('matches cpu through separableConv2d', async () => {
    const f = lossGrads(
      (x, w) => tf.separableConv2d(x, w, tf.tensor4d(rand(6 * 4, 3), [1, 1, 6, 4]), 2, 'same'),
      [2, 9, 7, 3],
      [3, 3, 3, 2],
      77,
    );
    check('depthwise', 'separableConv2d', await on('wasm', f), await on('cpu', f));
  });

  // tfjs refuses gradients of dilated depthwise convs, and the cpu backprop
  // kernels ignore `dilations`, so dilation 2 is checked at kernel level
  // against a direct evaluation of the definition.
  it('backprop kernels with dilation 2 match a direct reference', async () => {
    const configs: {
      x: [number, number, number, number];
      k: number;
      m: number;
      s: number;
      d: number;
      pad: Pad;
    }[] = [
      { x: [2, 9, 8, 3], k: 3, m: 1, s: 1, d: 2, pad: 'same' },
      { x: [2, 9, 8, 3], k: 3, m: 2, s: 1, d: 2, pad: 'valid' },
      { x: [1, 10, 7, 2], k: 2, m: 2, s: 1, d: 3, pad: 2 },
      { x: [3, 8, 9, 1], k: 3, m: 1, s: 1, d: 2, pad: EXPLICIT },
      { x: [2, 11, 9, 2], k: 3, m: 2, s: 2, d: 2, pad: 'same' },
      { x: [1, 5, 5, 2], k: 5, m: 1, s: 1, d: 1, pad: 4 },
    ];
    let seed = 300;
    for (const c of configs) {
      const fShape: [number, number, number, number] = [c.k, c.k, c.x[3], c.m];
      const info = tf.backend_util.computeConv2DInfo(c.x, fShape, c.s, c.d, c.pad, undefined, true);
      seed += 3;
      const xv = rand(size(c.x), seed);
      const wv = rand(size(fShape), seed + 1);
      const dyv = rand(size(info.outShape), seed + 2);
      const [refDx, refDw] = directDepthwiseBackprop(info, xv, wv, dyv);
      const attrs = { strides: c.s, dilations: c.d, pad: c.pad };
      const [dx, dw] = await on('wasm', () => {
        const x = tf.tensor(xv, c.x);
        const w = tf.tensor(wv, fShape);
        const dy = tf.tensor(dyv, info.outShape);
        return [
          tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy, filter: w }, {
            ...attrs,
            inputShape: c.x,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
          tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x, dy }, {
            ...attrs,
            filterShape: fShape,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
        ];
      });
      expect(dx?.shape).toEqual(c.x);
      expect(dw?.shape).toEqual(fShape);
      const d1 = relDiff((dx as Out).values, refDx);
      const d2 = relDiff((dw as Out).values, refDw);
      worst['depthwise (dilated, vs direct)'] = Math.max(
        worst['depthwise (dilated, vs direct)'] ?? 0,
        d1,
        d2,
      );
      expect(d1, `dx ${JSON.stringify(c)}`).toBeLessThanOrEqual(TOL);
      expect(d2, `dw ${JSON.stringify(c)}`).toBeLessThanOrEqual(TOL);
    }
  });
});

/** dx and dw of a depthwise conv straight from the definition (float64 sums). */
function directDepthwiseBackprop(
  info: tf.backend_util.Conv2DInfo,
  x: Float32Array,
  w: Float32Array,
  dy: Float32Array,
): [Float32Array, Float32Array] {
  const {
    batchSize: B,
    inHeight: H,
    inWidth: W,
    inChannels: C,
    outHeight: OH,
    outWidth: OW,
  } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
  const { dilationHeight: dh, dilationWidth: dw } = info;
  const m = info.outChannels / C;
  const dx = new Float64Array(B * H * W * C);
  const dW = new Float64Array(KH * KW * C * m);
  for (let b = 0; b < B; b++)
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++)
        for (let kh = 0; kh < KH; kh++) {
          const ih = oh * sh + kh * dh - info.padInfo.top;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < KW; kw++) {
            const iw = ow * sw + kw * dw - info.padInfo.left;
            if (iw < 0 || iw >= W) continue;
            for (let c = 0; c < C; c++)
              for (let q = 0; q < m; q++) {
                const g = dy[((b * OH + oh) * OW + ow) * C * m + c * m + q] as number;
                const xi = ((b * H + ih) * W + iw) * C + c;
                const wi = ((kh * KW + kw) * C + c) * m + q;
                dx[xi] = (dx[xi] as number) + g * (w[wi] as number);
                dW[wi] = (dW[wi] as number) + g * (x[xi] as number);
              }
          }
        }
  return [Float32Array.from(dx), Float32Array.from(dW)];
}

describe('unsortedSegmentSum and gather gradients (wasm vs cpu)', () => {
  it('unsortedSegmentSum matches cpu', async () => {
    const cases: { x: number[]; ids: number[]; idsShape: number[]; n: number; dtype?: 'int32' }[] =
      [
        { x: [6], ids: [0, 1, 0, 3, 3, 3], idsShape: [6], n: 4 },
        { x: [5, 3], ids: [2, 0, 2, 2, 1], idsShape: [5], n: 3 },
        { x: [5, 3], ids: [2, 0, 2, 2, 1], idsShape: [5], n: 6 }, // empty segments
        { x: [3, 2, 4], ids: [1, 0, 1], idsShape: [3], n: 5 },
        { x: [4, 2, 3], ids: [1, -1, 7, 1], idsShape: [4], n: 3 }, // out-of-range ids are dropped
        { x: [7, 2], ids: [0, 0, 0, 0, 0, 0, 0], idsShape: [7], n: 1 },
        { x: [5, 2], ids: [1, 0, 1, 1, 2], idsShape: [5], n: 3, dtype: 'int32' },
      ];
    let seed = 40;
    for (const c of cases) {
      seed += 1;
      const xv = rand(size(c.x), seed).map((v) => (c.dtype === 'int32' ? Math.round(v * 20) : v));
      const f = () => [
        tf.cast(
          tf.unsortedSegmentSum(
            tf.tensor(xv, c.x, c.dtype ?? 'float32'),
            tf.tensor<tf.Rank>(c.ids, c.idsShape, 'int32') as tf.Tensor1D,
            c.n,
          ),
          'float32',
        ),
      ];
      check('unsortedSegmentSum', JSON.stringify(c), await on('wasm', f), await on('cpu', f));
    }
  });

  // The cpu kernel (and the tfjs op docs) only handle 1-D ids; TensorFlow
  // allows any prefix of x's shape, which the wasm kernel supports.
  it('unsortedSegmentSum with 2-D segment ids matches a direct reference', async () => {
    const xv = rand(2 * 3 * 4, 11);
    const ids = [1, 0, 1, 4, 4, -2];
    const [out] = await on('wasm', () => [
      tf.unsortedSegmentSum(
        tf.tensor(xv, [2, 3, 4]),
        tf.tensor<tf.Rank>(ids, [2, 3], 'int32') as tf.Tensor1D,
        5,
      ),
    ]);
    const ref = new Float32Array(5 * 4);
    ids.forEach((id, i) => {
      if (id < 0) return;
      for (let j = 0; j < 4; j++)
        ref[id * 4 + j] = (ref[id * 4 + j] as number) + (xv[i * 4 + j] as number);
    });
    expect(out?.shape).toEqual([5, 4]);
    expect(relDiff((out as Out).values, ref)).toBeLessThanOrEqual(TOL);
  });

  it('gradient of tf.gather matches cpu', async () => {
    const cases: {
      x: number[];
      idx: number[];
      idxShape: number[];
      axis: number;
      batchDims?: number;
    }[] = [
      { x: [6, 4], idx: [0, 2, 2, 5, 1, 2], idxShape: [6], axis: 0 },
      { x: [3, 5, 2], idx: [4, 0, 4, 1, 4, 3], idxShape: [2, 3], axis: 1 },
      { x: [2, 3, 7], idx: [6, 6, 0], idxShape: [3], axis: 2 },
      { x: [10], idx: [9, 9, 9, 2], idxShape: [4], axis: 0 },
      { x: [2, 5, 3], idx: [0, 4, 4, 1, 2, 2, 2, 3], idxShape: [2, 4], axis: 1, batchDims: 1 },
    ];
    let seed = 60;
    for (const c of cases) {
      seed += 5;
      const xv = rand(size(c.x), seed);
      const f = () => {
        const x = tf.tensor(xv, c.x);
        const idx = tf.tensor(c.idx, c.idxShape, 'int32');
        const yShape = tf.tidy(() => tf.gather(x, idx, c.axis, c.batchDims).shape);
        const r = tf.tensor(rand(size(yShape), seed + 1), yShape);
        return [
          tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.gather(a, idx, c.axis, c.batchDims), r)))(x),
        ];
      };
      check('gather grad', JSON.stringify(c), await on('wasm', f), await on('cpu', f));
    }
  });
});

describe('no leaks on wasm', () => {
  it.each([
    ['stock', false],
    ['fast', true],
  ] as const)(
    'repeated gradient steps keep tensors, data buffers and the wasm heap flat (%s Conv2DBackpropInput)',
    async (_mode, fast) => {
      useFastWasmConv2DBackpropInput(fast);
      await tf.setBackend('wasm');
      const backend = tf.backend() as tf.KernelBackend & { wasm: { HEAPU8: Uint8Array } };
      const params = {
        x: tf.tensor4d(rand(8 * 28 * 28 * 16, 1), [8, 28, 28, 16]),
        conv: tf.tensor4d(rand(3 * 3 * 16 * 32, 2), [3, 3, 16, 32]),
        dw: tf.tensor4d(rand(3 * 3 * 32 * 2, 3), [3, 3, 32, 2]),
        emb: tf.tensor2d(rand(50 * 8, 4), [50, 8]),
      };
      const ids = tf.tensor1d([3, 7, 7, 49, 0, 3, 3, 12], 'int32');
      const names = Object.keys(params) as (keyof typeof params)[];
      // conv2d -> relu -> depthwise (stride 2, multiplier 2) -> mean, combined
      // with an embedding gather; gradients w.r.t. everything (incl. the input).
      const loss = (x: tf.Tensor, conv: tf.Tensor, dw: tf.Tensor, emb: tf.Tensor): tf.Scalar => {
        let h = tf.relu(tf.conv2d(x as tf.Tensor4D, conv as tf.Tensor4D, 1, 'same'));
        h = tf.depthwiseConv2d(h, dw as tf.Tensor4D, 2, 'same'); // [8, 14, 14, 64]
        const pooled = tf.mean(h, [1, 2]); // [8, 64]
        const e = tf.gather(emb, ids); // [8, 8]
        return tf.sum(tf.mul(tf.matMul(pooled, tf.reshape(tf.tile(e, [1, 8]), [64, 8])), 1e-3));
      };
      const step = () =>
        tf.tidy(() => {
          const { value, grads } = tf.valueAndGrads((...ts: tf.Tensor[]) =>
            loss(ts[0] as tf.Tensor, ts[1] as tf.Tensor, ts[2] as tf.Tensor, ts[3] as tf.Tensor),
          )(names.map((n) => params[n]));
          return tf.addN([value, ...grads].map((t) => tf.sum(tf.abs(t))));
        });

      const snapshot = () => ({
        numTensors: tf.memory().numTensors,
        numDataBuffers: tf.memory().numDataBuffers,
        backendDataIds: backend.numDataIds(),
      });
      try {
        for (let i = 0; i < 3; i++) step().dispose(); // warm-up
        const before = snapshot();
        const heapBefore = backend.wasm.HEAPU8.length;
        for (let i = 0; i < 20; i++) {
          const s = step();
          expect(Number.isFinite(s.dataSync()[0])).toBe(true);
          s.dispose();
          expect(snapshot()).toEqual(before);
        }
        // Each step makes several MB of wasm intermediates (and XNNPACK
        // operators keyed by the temporary filters); they must all be freed.
        expect(backend.wasm.HEAPU8.length).toBe(heapBefore);
      } finally {
        tf.dispose([ids, ...Object.values(params)]);
        useFastWasmConv2DBackpropInput(false);
      }
    },
  );
});
