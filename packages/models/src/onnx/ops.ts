/**
 * ONNX operators as eager, differentiable tfjs computations.
 *
 * Layout. Every value has ONNX semantics (NCHW for images), but a rank-4
 * tensor value may hold its data as an NCHW tensor (`onnx`), as an NHWC tensor
 * (`nhwc`, the same values transposed by [0, 2, 3, 1]), or both (a cache).
 * tfjs convolutions and pools want NHWC, so Conv/Pool read `nhwc` and produce
 * `nhwc`; elementwise ops, BatchNormalization, Pad, Concat on channels and
 * GlobalAveragePool keep whichever form they get; an NCHW tensor is
 * materialised (one transpose) only when an op needs ONNX layout (Reshape,
 * Flatten, Gemm, …) or when a value is handed back to the caller. A
 * Transpose by [0, 2, 3, 1] of an NHWC-held value is free (the exporter emits
 * exactly that before Flatten), so a conv chain runs with no transposes at all.
 *
 * Small integer values (shapes, axes, indices: Shape/Gather/Unsqueeze/Concat/
 * Constant/int initializers) are "host" values — plain arrays folded on the
 * CPU, never tensors — so Flatten-via-Reshape patterns constant-fold.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type DecodedTensor, DT, isFloatType } from '@transferlab/graph';

export interface HostValue {
  kind: 'host';
  /** ONNX element type code. */
  dtype: number;
  shape: number[];
  data: number[];
}

export interface TensorValue {
  kind: 'tensor';
  /** The value in ONNX layout. */
  onnx?: tf.Tensor;
  /** For rank-4 values: the same data transposed to NHWC. */
  nhwc?: tf.Tensor4D;
}

export type Value = HostValue | TensorValue;

export type AttrValue =
  | { kind: 'int'; v: number }
  | { kind: 'float'; v: number }
  | { kind: 'ints'; v: number[] }
  | { kind: 'floats'; v: number[] }
  | { kind: 'string'; v: string }
  | { kind: 'tensor'; v: DecodedTensor }
  | { kind: 'other'; type: string };

export interface NodeInfo {
  index: number;
  /** Name for messages: the node's name, or "#index" when it has none. */
  label: string;
  opType: string;
  inputs: string[];
  outputs: string[];
  attrs: ReadonlyMap<string, AttrValue>;
}

/**
 * How a graph runs: `training` switches BatchNormalization to batch
 * statistics; `statistics` then receives each BN node's updated running mean
 * and variance, keyed by the names of its mean / variance inputs.
 */
export interface RunMode {
  readonly training: boolean;
  readonly statistics?: Map<string, tf.Tensor>;
}

const INFERENCE: RunMode = { training: false };

export class OpContext {
  constructor(
    readonly source: string,
    readonly node: NodeInfo,
    readonly opset: number,
    private readonly values: readonly (Value | undefined)[],
    readonly mode: RunMode = INFERENCE,
  ) {}

  fail(msg: string): never {
    throw new Error(`${this.source}: node "${this.node.label}" (${this.node.opType}): ${msg}`);
  }

  input(i: number): Value | undefined {
    return this.values[i];
  }

  need(i: number): Value {
    const v = this.values[i];
    if (!v) this.fail(`input ${i} is required`);
    return v;
  }

  /** An input that must be known without running the graph (a shape, axes, pads, bounds). */
  host(i: number, what: string): HostValue | undefined {
    const v = this.values[i];
    if (!v) return undefined;
    if (v.kind !== 'host') {
      this.fail(
        `input ${i} (${what}) must be a constant or computed from shapes, but it depends on tensor data`,
      );
    }
    return v;
  }

  private attr(name: string): AttrValue | undefined {
    return this.node.attrs.get(name);
  }

  int(name: string, def: number): number {
    const a = this.attr(name);
    if (!a) return def;
    if (a.kind !== 'int') this.fail(`attribute ${name} should be an int, got ${a.kind}`);
    return a.v;
  }

  float(name: string, def: number): number {
    const a = this.attr(name);
    if (!a) return def;
    if (a.kind !== 'float' && a.kind !== 'int')
      this.fail(`attribute ${name} should be a float, got ${a.kind}`);
    return a.v;
  }

  ints(name: string): number[] | undefined {
    const a = this.attr(name);
    if (!a) return undefined;
    if (a.kind !== 'ints') this.fail(`attribute ${name} should be ints, got ${a.kind}`);
    return a.v;
  }

  string(name: string, def: string): string {
    const a = this.attr(name);
    if (!a) return def;
    if (a.kind !== 'string') this.fail(`attribute ${name} should be a string, got ${a.kind}`);
    return a.v;
  }

  attrValue(name: string): AttrValue | undefined {
    return this.attr(name);
  }
}

export type OpImpl = (ctx: OpContext) => Value[];

// ---------------------------------------------------------------------------
// Values

export function tensorValue(t: tf.Tensor): TensorValue {
  return { kind: 'tensor', onnx: t };
}

function nhwcValue(t: tf.Tensor): TensorValue {
  return { kind: 'tensor', nhwc: t as tf.Tensor4D };
}

export function hostValue(dtype: number, shape: number[], data: number[]): HostValue {
  return { kind: 'host', dtype, shape, data };
}

function tfDtype(onnxType: number): 'float32' | 'int32' | 'bool' {
  if (isFloatType(onnxType)) return 'float32';
  if (onnxType === DT.BOOL) return 'bool';
  return 'int32';
}

export function shapeOf(v: Value): number[] {
  if (v.kind === 'host') return v.shape;
  if (v.onnx) return [...v.onnx.shape];
  const [n, h, w, c] = (v.nhwc as tf.Tensor4D).shape;
  return [n, c, h, w];
}

/** The value as a tensor in ONNX layout (transposing an NHWC-held value once, cached). */
export function onnxTensor(v: Value): tf.Tensor {
  if (v.kind === 'host') return tf.tensor(v.data, v.shape, tfDtype(v.dtype));
  if (!v.onnx) v.onnx = tf.transpose(v.nhwc as tf.Tensor4D, [0, 3, 1, 2]);
  return v.onnx;
}

/** A rank-4 value as an NHWC tensor. */
function nhwcTensor(ctx: OpContext, v: Value): tf.Tensor4D {
  if (v.kind === 'tensor' && v.nhwc) return v.nhwc;
  const t = onnxTensor(v);
  if (t.rank !== 4)
    ctx.fail(`only 2-D spatial data ([N, C, H, W]) is supported, got shape [${t.shape}]`);
  const out = tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;
  if (v.kind === 'tensor') v.nhwc = out;
  return out;
}

function isNhwc(v: Value | undefined): boolean {
  return v?.kind === 'tensor' && v.nhwc !== undefined;
}

/** An operand broadcasting against a rank-4 NCHW value, rearranged for the NHWC form. */
function nhwcOperand(v: Value): tf.Tensor {
  if (v.kind === 'tensor' && v.nhwc) return v.nhwc;
  const s = shapeOf(v);
  const t = onnxTensor(v);
  if (s.length === 0 || t.size === 1) return t;
  const p = [...Array(4 - s.length).fill(1), ...s] as [number, number, number, number];
  const r = tf.reshape(t, p);
  if (p[1] === 1 || (p[2] === 1 && p[3] === 1)) return tf.reshape(r, [p[0], p[2], p[3], p[1]]);
  return tf.transpose(r, [0, 2, 3, 1]);
}

function unary(v: Value, f: (t: tf.Tensor) => tf.Tensor): TensorValue {
  if (v.kind === 'tensor' && v.nhwc) return nhwcValue(f(v.nhwc));
  return tensorValue(f(onnxTensor(v)));
}

function broadcastShapes(ctx: OpContext, a: number[], b: number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) ctx.fail(`cannot broadcast [${a}] with [${b}]`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--)
    s[i] = (s[i + 1] as number) * (shape[i + 1] as number);
  return s;
}

function hostBroadcast(
  ctx: OpContext,
  a: HostValue,
  b: HostValue,
  f: (x: number, y: number) => number,
): HostValue {
  const shape = broadcastShapes(ctx, a.shape, b.shape);
  const size = shape.reduce((p, d) => p * d, 1);
  const st = strides(shape);
  const index = (v: HostValue, flat: number): number => {
    let off = 0;
    const vs = strides(v.shape);
    const lead = shape.length - v.shape.length;
    for (let k = 0; k < v.shape.length; k++) {
      const coord = Math.floor(flat / (st[k + lead] as number)) % (shape[k + lead] as number);
      off += (v.shape[k] === 1 ? 0 : coord) * (vs[k] as number);
    }
    return v.data[off] as number;
  };
  const data: number[] = [];
  for (let i = 0; i < size; i++) data.push(f(index(a, i), index(b, i)));
  return hostValue(a.dtype, shape, data);
}

function binary(
  ctx: OpContext,
  f: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
  hostF: (a: number, b: number, isInt: boolean) => number,
): Value[] {
  const a = ctx.need(0);
  const b = ctx.need(1);
  if (a.kind === 'host' && b.kind === 'host') {
    const isInt = !isFloatType(a.dtype);
    return [hostBroadcast(ctx, a, b, (x, y) => hostF(x, y, isInt))];
  }
  if ((isNhwc(a) && shapeOf(b).length <= 4) || (isNhwc(b) && shapeOf(a).length <= 4)) {
    // Stay in NHWC: the other operand is rearranged (usually a reshape of a
    // small per-channel tensor; at worst one transpose, as ONNX layout would cost).
    return [nhwcValue(f(nhwcOperand(a), nhwcOperand(b)))];
  }
  return [tensorValue(f(onnxTensor(a), onnxTensor(b)))];
}

function normAxis(ctx: OpContext, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && a < rank)) ctx.fail(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

const product = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

// ---------------------------------------------------------------------------
// Spatial geometry shared by Conv and pools

interface Geometry {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  /** [top, left] */
  begin: [number, number];
  /** [bottom, right], including rows/cols added by ceil_mode. */
  end: [number, number];
  /** Extra end padding added only for ceil_mode (not counted by AveragePool). */
  ceilExtra: [number, number];
}

function geometry(
  ctx: OpContext,
  inHW: [number, number],
  kernel: [number, number],
  ceilMode = false,
): Geometry {
  const s = ctx.ints('strides') ?? [1, 1];
  const d = ctx.ints('dilations') ?? [1, 1];
  if (s.length !== 2 || d.length !== 2) ctx.fail('only 2-D strides/dilations are supported');
  const autoPad = ctx.string('auto_pad', 'NOTSET');
  const pads = ctx.ints('pads') ?? [0, 0, 0, 0];
  if (pads.length !== 4) ctx.fail(`pads must have 4 entries for 2-D data, got [${pads}]`);
  const g: Geometry = {
    kernel,
    strides: s as [number, number],
    dilations: d as [number, number],
    begin: [0, 0],
    end: [0, 0],
    ceilExtra: [0, 0],
  };
  for (let i = 0; i < 2; i++) {
    const size = inHW[i] as number;
    const st = s[i] as number;
    const eff = ((kernel[i] as number) - 1) * (d[i] as number) + 1;
    let b = 0;
    let e = 0;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      const out = Math.ceil(size / st);
      const total = Math.max((out - 1) * st + eff - size, 0);
      const small = Math.floor(total / 2);
      [b, e] = autoPad === 'SAME_UPPER' ? [small, total - small] : [total - small, small];
    } else if (autoPad === 'NOTSET') {
      b = pads[i] as number;
      e = pads[i + 2] as number;
    } else if (autoPad !== 'VALID') {
      ctx.fail(`auto_pad "${autoPad}" is not supported`);
    }
    let extra = 0;
    if (ceilMode) {
      let out = Math.ceil((size + b + e - eff) / st) + 1;
      if ((out - 1) * st >= size + b) out -= 1;
      extra = Math.max(0, (out - 1) * st + eff - (size + b + e));
    }
    if (size + b + e + extra < eff)
      ctx.fail(`input size ${size} is too small for a kernel of ${eff} with pads ${b}+${e}`);
    g.begin[i] = b;
    g.end[i] = e + extra;
    g.ceilExtra[i] = extra;
  }
  return g;
}

function spatialInput(ctx: OpContext, x: Value): [number, number, number, number] {
  const s = shapeOf(x);
  if (s.length !== 4)
    ctx.fail(`only 2-D spatial data ([N, C, H, W]) is supported, got shape [${s}]`);
  return s as [number, number, number, number];
}

function kernelShape(ctx: OpContext): [number, number] {
  const k = ctx.ints('kernel_shape');
  if (k?.length !== 2) ctx.fail('kernel_shape with 2 entries is required');
  return k as [number, number];
}

const LOWEST = -3.4028234663852886e38;

// ---------------------------------------------------------------------------
// Operators

function conv(ctx: OpContext): Value[] {
  const x = ctx.need(0);
  const [, c, h, w] = spatialInput(ctx, x);
  const W = onnxTensor(ctx.need(1));
  if (W.rank !== 4) ctx.fail(`weight must be [M, C/group, kH, kW], got [${W.shape}]`);
  const [m, cg, kh, kw] = W.shape as [number, number, number, number];
  const ks = ctx.ints('kernel_shape');
  if (ks && (ks[0] !== kh || ks[1] !== kw))
    ctx.fail(`kernel_shape [${ks}] disagrees with weight shape [${W.shape}]`);
  const group = ctx.int('group', 1);
  if (c !== cg * group) ctx.fail(`input has ${c} channels, weight expects ${cg} × group ${group}`);
  if (m % group !== 0) ctx.fail(`${m} output channels not divisible by group ${group}`);
  const g = geometry(ctx, [h, w], [kh, kw]);
  const pad: 'valid' | [[0, 0], [number, number], [number, number], [0, 0]] =
    g.begin.every((p) => p === 0) && g.end.every((p) => p === 0)
      ? 'valid'
      : [
          [0, 0],
          [g.begin[0], g.end[0]],
          [g.begin[1], g.end[1]],
          [0, 0],
        ];
  if (g.strides.some((s) => s > 1) && g.dilations.some((d) => d > 1))
    ctx.fail('strides > 1 together with dilations > 1 is not supported by tfjs');
  const xh = nhwcTensor(ctx, x);
  let y: tf.Tensor4D;
  if (group === 1) {
    const f = tf.transpose(W, [2, 3, 1, 0]) as tf.Tensor4D;
    y = tf.conv2d(xh, f, g.strides, pad, 'NHWC', g.dilations);
  } else if (cg === 1) {
    // Depthwise: output channel c·mult + q reads input channel c, as in tfjs.
    const mult = m / c;
    const f = tf.transpose(tf.reshape(W, [c, mult, kh, kw]), [2, 3, 0, 1]) as tf.Tensor4D;
    y = tf.depthwiseConv2d(xh, f, g.strides, pad, 'NHWC', g.dilations);
  } else {
    const xs = tf.split(xh, group, 3);
    const ws = tf.split(W, group, 0);
    y = tf.concat(
      xs.map((xi, i) =>
        tf.conv2d(
          xi as tf.Tensor4D,
          tf.transpose(ws[i] as tf.Tensor, [2, 3, 1, 0]) as tf.Tensor4D,
          g.strides,
          pad,
          'NHWC',
          g.dilations,
        ),
      ),
      3,
    );
  }
  const b = ctx.input(2);
  if (b) y = tf.add(y, onnxTensor(b));
  return [nhwcValue(y)];
}

function maxPool(ctx: OpContext): Value[] {
  const x = ctx.need(0);
  const [, , h, w] = spatialInput(ctx, x);
  const g = geometry(ctx, [h, w], kernelShape(ctx), ctx.int('ceil_mode', 0) === 1);
  let xh = nhwcTensor(ctx, x);
  if ([...g.begin, ...g.end].some((p) => p > 0)) {
    xh = tf.pad(
      xh,
      [
        [0, 0],
        [g.begin[0], g.end[0]],
        [g.begin[1], g.end[1]],
        [0, 0],
      ],
      LOWEST,
    );
  }
  const y = g.dilations.every((d) => d === 1)
    ? tf.maxPool(xh, g.kernel, g.strides, 'valid')
    : tf.pool(xh, g.kernel, 'max', 'valid', g.dilations, g.strides);
  return [nhwcValue(y)];
}

function averagePool(ctx: OpContext): Value[] {
  const x = ctx.need(0);
  const [, , h, w] = spatialInput(ctx, x);
  const g = geometry(ctx, [h, w], kernelShape(ctx), ctx.int('ceil_mode', 0) === 1);
  if (g.dilations.some((d) => d !== 1)) ctx.fail('dilations are not supported');
  const includePad = ctx.int('count_include_pad', 0) === 1;
  const xh = nhwcTensor(ctx, x);
  const padded = [...g.begin, ...g.end].some((p) => p > 0);
  if (!padded) return [nhwcValue(tf.avgPool(xh, g.kernel, g.strides, 'valid'))];
  const padH: [number, number] = [g.begin[0], g.end[0]];
  const padW: [number, number] = [g.begin[1], g.end[1]];
  const mean = tf.avgPool(tf.pad(xh, [[0, 0], padH, padW, [0, 0]]), g.kernel, g.strides, 'valid');
  // Fraction of each window that counts: the input cells, plus the explicit
  // pads when count_include_pad (never the cells ceil_mode adds).
  const [eh, ew] = g.ceilExtra;
  const counted = includePad
    ? tf.pad(tf.ones([1, h + padH[0] + padH[1] - eh, w + padW[0] + padW[1] - ew, 1]), [
        [0, 0],
        [0, eh],
        [0, ew],
        [0, 0],
      ])
    : tf.pad(tf.ones([1, h, w, 1]), [[0, 0], padH, padW, [0, 0]]);
  const fraction = tf.avgPool(counted as tf.Tensor4D, g.kernel, g.strides, 'valid');
  return [nhwcValue(tf.div(mean, fraction))];
}

function globalPool(kind: 'mean' | 'max'): OpImpl {
  return (ctx) => {
    const x = ctx.need(0);
    const reduce = kind === 'mean' ? tf.mean : tf.max;
    if (x.kind === 'tensor' && x.nhwc) return [nhwcValue(reduce(x.nhwc, [1, 2], true))];
    const t = onnxTensor(x);
    if (t.rank < 3) ctx.fail(`needs [N, C, spatial...] input, got [${t.shape}]`);
    const axes = Array.from({ length: t.rank - 2 }, (_, i) => i + 2);
    return [tensorValue(reduce(t, axes, true))];
  };
}

/**
 * BatchNormalization. Inference (the default): y = scale·(x − mean)/√(var + ε)
 * + bias with the stored running statistics. Training mode (apply's
 * `training: true`, as PyTorch's `model.train()`): normalised with the
 * batch's mean and biased variance over N and the spatial axes, gradients
 * flowing through them; the running statistics are not changed in place but
 * reported: running·m + batch·(1 − m) with ONNX's `momentum` m (default 0.9,
 * PyTorch's 0.1 the other way round) and, as PyTorch, the unbiased batch
 * variance. A file exported in training mode (training_mode = 1) is refused:
 * the mode is chosen when the graph runs, not stored in it.
 */
function batchNorm(ctx: OpContext): Value[] {
  if (ctx.opset < 9 && ctx.int('spatial', 1) !== 1) ctx.fail('spatial = 0 is not supported');
  if (ctx.int('training_mode', 0) === 1)
    ctx.fail(
      'training_mode = 1 is not supported: export the model in eval mode; fine-tuning runs BatchNormalization with batch statistics itself (apply with training: true)',
    );
  const x = ctx.need(0);
  const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => onnxTensor(ctx.need(i))) as [
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
  ];
  const eps = ctx.float('epsilon', 1e-5);
  const nhwc = x.kind === 'tensor' && x.nhwc ? x.nhwc : undefined;
  const t = nhwc ?? onnxTensor(x);
  if (t.rank < 2) ctx.fail(`needs [N, C, ...] input, got [${t.shape}]`);
  // Channels last (nhwc) or at axis 1 (ONNX layout); statistics over every other axis.
  const channelAxis = nhwc ? t.rank - 1 : 1;
  const c = t.shape[channelAxis] as number;
  const bshape = nhwc ? [c] : [c, ...Array(t.rank - 2).fill(1)];
  let useMean = mean;
  let useVar = variance;
  if (ctx.mode.training) {
    const axes = Array.from({ length: t.rank }, (_, i) => i).filter((i) => i !== channelAxis);
    const count = t.size / c;
    if (count < 2)
      ctx.fail(`training mode needs more than one value per channel, got [${t.shape}]`);
    const moments = tf.moments(t, axes);
    useMean = moments.mean;
    useVar = moments.variance;
    const momentum = ctx.float('momentum', 0.9);
    const stats = ctx.mode.statistics;
    const names = [ctx.node.inputs[3], ctx.node.inputs[4]];
    if (stats && names[0] && names[1]) {
      const unbiased = tf.mul(moments.variance, count / (count - 1));
      stats.set(names[0], tf.add(tf.mul(mean, momentum), tf.mul(moments.mean, 1 - momentum)));
      stats.set(names[1], tf.add(tf.mul(variance, momentum), tf.mul(unbiased, 1 - momentum)));
    }
  }
  const mul = tf.mul(scale, tf.rsqrt(tf.add(useVar, eps)));
  const shift = tf.sub(bias, tf.mul(useMean, mul));
  const y = tf.add(tf.mul(t, tf.reshape(mul, bshape)), tf.reshape(shift, bshape));
  return [nhwc ? nhwcValue(y) : tensorValue(y)];
}

function gemm(ctx: OpContext): Value[] {
  const a = onnxTensor(ctx.need(0));
  const b = onnxTensor(ctx.need(1));
  if (a.rank !== 2 || b.rank !== 2) ctx.fail(`A and B must be 2-D, got [${a.shape}], [${b.shape}]`);
  const alpha = ctx.float('alpha', 1);
  const beta = ctx.float('beta', 1);
  let y = tf.matMul(
    a as tf.Tensor2D,
    b as tf.Tensor2D,
    ctx.int('transA', 0) === 1,
    ctx.int('transB', 0) === 1,
  ) as tf.Tensor;
  if (alpha !== 1) y = tf.mul(y, alpha);
  const c = ctx.input(2);
  if (c && beta !== 0) {
    const ct = onnxTensor(c);
    y = tf.add(y, beta === 1 ? ct : tf.mul(ct, beta));
  }
  return [tensorValue(y)];
}

function matMul(ctx: OpContext): Value[] {
  let a = onnxTensor(ctx.need(0));
  let b = onnxTensor(ctx.need(1));
  const aVec = a.rank === 1;
  const bVec = b.rank === 1;
  if (aVec) a = tf.expandDims(a, 0);
  if (bVec) b = tf.expandDims(b, 1);
  let y: tf.Tensor = tf.matMul(a, b);
  if (aVec) y = tf.squeeze(y, [y.rank - 2]);
  if (bVec) y = tf.squeeze(y, [y.rank - 1]);
  return [tensorValue(y)];
}

function softmax(log: boolean): OpImpl {
  return (ctx) => {
    const t = onnxTensor(ctx.need(0));
    const f = (u: tf.Tensor) => (log ? tf.logSoftmax(u) : tf.softmax(u));
    const axis = normAxis(ctx, ctx.int('axis', ctx.opset >= 13 ? -1 : 1), t.rank);
    if (ctx.opset < 13) {
      const shape = t.shape;
      const flat = tf.reshape(t, [product(shape.slice(0, axis)), product(shape.slice(axis))]);
      return [tensorValue(tf.reshape(f(flat), shape))];
    }
    if (axis === t.rank - 1) return [tensorValue(f(t))];
    const perm = Array.from({ length: t.rank }, (_, i) => i);
    perm[axis] = t.rank - 1;
    perm[t.rank - 1] = axis;
    return [tensorValue(tf.transpose(f(tf.transpose(t, perm)), perm))];
  };
}

function clip(ctx: OpContext): Value[] {
  let lo = Number.NEGATIVE_INFINITY;
  let hi = Number.POSITIVE_INFINITY;
  if (ctx.opset < 11) {
    lo = ctx.float('min', lo);
    hi = ctx.float('max', hi);
  } else {
    const min = ctx.host(1, 'min');
    const max = ctx.host(2, 'max');
    if (min) lo = min.data[0] as number;
    if (max) hi = max.data[0] as number;
  }
  if (lo > hi) ctx.fail(`min ${lo} > max ${hi}`);
  const x = ctx.need(0);
  if (lo === 0 && hi === Number.POSITIVE_INFINITY) return [unary(x, tf.relu)];
  return [unary(x, (t) => tf.clipByValue(t, lo, hi))];
}

function reshapeTo(ctx: OpContext, x: Value, shape: number[]): Value {
  if (x.kind === 'host') {
    if (product(shape) !== x.data.length) ctx.fail(`cannot reshape [${x.shape}] to [${shape}]`);
    return hostValue(x.dtype, shape, x.data);
  }
  const t = onnxTensor(x);
  if (product(shape) !== t.size) ctx.fail(`cannot reshape [${t.shape}] to [${shape}]`);
  return tensorValue(tf.reshape(t, shape));
}

function reshape(ctx: OpContext): Value[] {
  const x = ctx.need(0);
  const spec = ctx.opset < 5 ? ctx.ints('shape') : ctx.host(1, 'shape')?.data;
  if (!spec) ctx.fail('shape is required');
  const inShape = shapeOf(x);
  const allowZero = ctx.int('allowzero', 0) === 1;
  const out = spec.map((d, i) => (d === 0 && !allowZero ? (inShape[i] as number) : d));
  const unknown = out.indexOf(-1);
  if (unknown >= 0) {
    const known = product(out.filter((_, i) => i !== unknown));
    out[unknown] = known === 0 ? 0 : product(inShape) / known;
  }
  return [reshapeTo(ctx, x, out)];
}

function flatten(ctx: OpContext): Value[] {
  const x = ctx.need(0);
  const s = shapeOf(x);
  const axis = ctx.int('axis', 1);
  const a = axis < 0 ? axis + s.length : axis;
  if (a < 0 || a > s.length) ctx.fail(`axis ${axis} out of range for rank ${s.length}`);
  return [reshapeTo(ctx, x, [product(s.slice(0, a)), product(s.slice(a))])];
}

function transpose(ctx: OpContext): Value[] {
  const x = ctx.need(0);
  const rank = shapeOf(x).length;
  const perm = ctx.ints('perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  if (perm.length !== rank) ctx.fail(`perm [${perm}] does not match rank ${rank}`);
  const p = perm.join();
  if (x.kind === 'tensor' && x.nhwc && p === '0,2,3,1') return [tensorValue(x.nhwc)];
  if (rank === 4 && p === '0,3,1,2') return [nhwcValue(onnxTensor(x))];
  return [tensorValue(tf.transpose(onnxTensor(x), perm))];
}

function hostConcat(ctx: OpContext, xs: HostValue[], axis: number): HostValue {
  const first = xs[0] as HostValue;
  const rank = first.shape.length;
  const a = normAxis(ctx, axis, rank);
  const outer = product(first.shape.slice(0, a));
  const shape = [...first.shape];
  shape[a] = xs.reduce((s, x) => s + (x.shape[a] as number), 0);
  const data: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const x of xs) {
      const chunk = product(x.shape.slice(a));
      for (let k = 0; k < chunk; k++) data.push(x.data[o * chunk + k] as number);
    }
  }
  return hostValue(first.dtype, shape, data);
}

function concat(ctx: OpContext): Value[] {
  const xs = ctx.node.inputs.map((_, i) => ctx.need(i));
  const axis = ctx.int('axis', Number.NaN);
  if (Number.isNaN(axis)) ctx.fail('attribute axis is required');
  if (xs.every((x) => x.kind === 'host')) return [hostConcat(ctx, xs as HostValue[], axis)];
  const rank = shapeOf(xs[0] as Value).length;
  const a = normAxis(ctx, axis, rank);
  if (rank === 4 && xs.every(isNhwc)) {
    const nhwcAxis = [0, 3, 1, 2][a] as number;
    return [
      nhwcValue(
        tf.concat(
          xs.map((x) => (x as TensorValue).nhwc as tf.Tensor4D),
          nhwcAxis,
        ),
      ),
    ];
  }
  return [tensorValue(tf.concat(xs.map(onnxTensor), a))];
}

function pad(ctx: OpContext): Value[] {
  const x = ctx.need(0);
  const rank = shapeOf(x).length;
  const mode = ctx.string('mode', 'constant');
  let pads: number[];
  let value = 0;
  let axes = Array.from({ length: rank }, (_, i) => i);
  if (ctx.opset < 11) {
    pads = ctx.ints('pads') ?? ctx.ints('paddings') ?? ctx.fail('pads is required');
    value = ctx.float('value', 0);
  } else {
    pads = ctx.host(1, 'pads')?.data ?? ctx.fail('pads is required');
    const cv = ctx.host(2, 'constant_value');
    if (cv && cv.data.length > 0) value = cv.data[0] as number;
    const ax = ctx.host(3, 'axes');
    if (ax) axes = ax.data.map((d) => normAxis(ctx, d, rank));
  }
  if (pads.length !== 2 * axes.length)
    ctx.fail(`pads [${pads}] must have 2 × ${axes.length} entries`);
  const perAxis: [number, number][] = Array.from({ length: rank }, () => [0, 0]);
  axes.forEach((a, i) => {
    perAxis[a] = [pads[i] as number, pads[i + axes.length] as number];
  });
  const useNhwc = rank === 4 && isNhwc(x);
  const order = useNhwc ? [0, 2, 3, 1] : Array.from({ length: rank }, (_, i) => i);
  let t = useNhwc ? ((x as TensorValue).nhwc as tf.Tensor) : onnxTensor(x);
  const p = order.map((i) => perAxis[i] as [number, number]);
  // Negative pads crop.
  if (p.some(([b, e]) => b < 0 || e < 0)) {
    const begin = p.map(([b]) => Math.max(0, -b));
    const size = p.map(([b, e], i) => (t.shape[i] as number) - Math.max(0, -b) - Math.max(0, -e));
    t = tf.slice(t, begin, size);
  }
  const pos = p.map(([b, e]) => [Math.max(0, b), Math.max(0, e)] as [number, number]);
  if (pos.every(([b, e]) => b === 0 && e === 0)) {
    // nothing to add
  } else if (mode === 'constant') {
    t = tf.pad(t, pos, value);
  } else if (mode === 'reflect') {
    pos.forEach(([b, e], i) => {
      if (b >= (t.shape[i] as number) || e >= (t.shape[i] as number))
        ctx.fail(`reflect pads [${b}, ${e}] must be smaller than dimension ${t.shape[i]}`);
    });
    t = tf.mirrorPad(t, pos, 'reflect');
  } else if (mode === 'edge') {
    pos.forEach(([b, e], i) => {
      if (b === 0 && e === 0) return;
      const n = t.shape[i] as number;
      const idx = [
        ...Array(b).fill(0),
        ...Array.from({ length: n }, (_, k) => k),
        ...Array(e).fill(n - 1),
      ];
      t = tf.gather(t, tf.tensor1d(idx, 'int32'), i);
    });
  } else {
    ctx.fail(`mode "${mode}" is not supported`);
  }
  return [useNhwc ? nhwcValue(t) : tensorValue(t)];
}

function constant(ctx: OpContext): Value[] {
  const t = ctx.attrValue('value');
  if (t?.kind === 'tensor') return [hostValue(t.v.dataType, t.v.dims, Array.from(t.v.data))];
  const vf = ctx.attrValue('value_float');
  if (vf?.kind === 'float') return [hostValue(DT.FLOAT, [], [vf.v])];
  const vfs = ctx.attrValue('value_floats');
  if (vfs?.kind === 'floats') return [hostValue(DT.FLOAT, [vfs.v.length], vfs.v)];
  const vi = ctx.attrValue('value_int');
  if (vi?.kind === 'int') return [hostValue(DT.INT64, [], [vi.v])];
  const vis = ctx.attrValue('value_ints');
  if (vis?.kind === 'ints') return [hostValue(DT.INT64, [vis.v.length], vis.v)];
  return ctx.fail('only value / value_float(s) / value_int(s) constants are supported');
}

function shape(ctx: OpContext): Value[] {
  const s = shapeOf(ctx.need(0));
  const r = s.length;
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const start = clamp(ctx.int('start', 0));
  const end = clamp(ctx.int('end', r));
  const out = s.slice(start, end);
  return [hostValue(DT.INT64, [out.length], out)];
}

function gather(ctx: OpContext): Value[] {
  const x = ctx.need(0);
  const idx = ctx.need(1);
  const xs = shapeOf(x);
  const axis = normAxis(ctx, ctx.int('axis', 0), xs.length);
  const dim = xs[axis] as number;
  if (idx.kind === 'host') {
    const norm = idx.data.map((i) => (i < 0 ? i + dim : i));
    if (norm.some((i) => i < 0 || i >= dim))
      ctx.fail(`indices [${idx.data}] out of range 0..${dim - 1}`);
    if (x.kind === 'host') {
      const outer = product(xs.slice(0, axis));
      const inner = product(xs.slice(axis + 1));
      const data: number[] = [];
      for (let o = 0; o < outer; o++)
        for (const i of norm)
          for (let k = 0; k < inner; k++) data.push(x.data[(o * dim + i) * inner + k] as number);
      return [
        hostValue(x.dtype, [...xs.slice(0, axis), ...idx.shape, ...xs.slice(axis + 1)], data),
      ];
    }
    return [tensorValue(tf.gather(onnxTensor(x), tf.tensor(norm, idx.shape, 'int32'), axis))];
  }
  let it = tf.cast(onnxTensor(idx), 'int32');
  it = tf.add(it, tf.mul(tf.cast(tf.less(it, 0), 'int32'), dim));
  return [tensorValue(tf.gather(onnxTensor(x), it, axis))];
}

function axesOf(ctx: OpContext, what: string): number[] | undefined {
  return ctx.opset < 13 ? ctx.ints('axes') : ctx.host(1, what)?.data;
}

function unsqueeze(ctx: OpContext): Value[] {
  const x = ctx.need(0);
  const s = shapeOf(x);
  const axes = axesOf(ctx, 'axes') ?? ctx.fail('axes is required');
  const r = s.length + axes.length;
  const norm = axes.map((a) => normAxis(ctx, a, r)).sort((a, b) => a - b);
  const out = [...s];
  for (const a of norm) out.splice(a, 0, 1);
  return [reshapeTo(ctx, x, out)];
}

function squeeze(ctx: OpContext): Value[] {
  const x = ctx.need(0);
  const s = shapeOf(x);
  const axes = axesOf(ctx, 'axes');
  const drop = new Set(
    axes ? axes.map((a) => normAxis(ctx, a, s.length)) : s.flatMap((d, i) => (d === 1 ? [i] : [])),
  );
  for (const a of drop) if (s[a] !== 1) ctx.fail(`cannot squeeze axis ${a} of size ${s[a]}`);
  return [
    reshapeTo(
      ctx,
      x,
      s.filter((_, i) => !drop.has(i)),
    ),
  ];
}

function slice(ctx: OpContext): Value[] {
  const x = ctx.need(0);
  const s = shapeOf(x);
  let starts: number[];
  let ends: number[];
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (ctx.opset < 10) {
    starts = ctx.ints('starts') ?? ctx.fail('starts is required');
    ends = ctx.ints('ends') ?? ctx.fail('ends is required');
    axes = ctx.ints('axes');
  } else {
    starts = ctx.host(1, 'starts')?.data ?? ctx.fail('starts is required');
    ends = ctx.host(2, 'ends')?.data ?? ctx.fail('ends is required');
    axes = ctx.host(3, 'axes')?.data;
    steps = ctx.host(4, 'steps')?.data;
  }
  const ax = (axes ?? starts.map((_, i) => i)).map((a) => normAxis(ctx, a, s.length));
  const begin = s.map(() => 0);
  const size = [...s];
  const step = s.map(() => 1);
  ax.forEach((a, i) => {
    const d = s[a] as number;
    const st = steps?.[i] ?? 1;
    if (st === 0) ctx.fail('steps must be non-zero');
    const norm = (v: number, lo: number, hi: number) =>
      Math.min(Math.max(v < 0 ? v + d : v, lo), hi);
    const b = st > 0 ? norm(starts[i] as number, 0, d) : norm(starts[i] as number, -1, d - 1);
    const e = st > 0 ? norm(ends[i] as number, 0, d) : norm(ends[i] as number, -1, d - 1);
    begin[a] = b;
    size[a] = Math.max(0, Math.ceil((e - b) / st));
    step[a] = st;
  });
  if (x.kind === 'host') {
    const out: number[] = [];
    const xsStr = strides(s);
    const outSize = product(size);
    const outStr = strides(size);
    for (let i = 0; i < outSize; i++) {
      let off = 0;
      for (let k = 0; k < s.length; k++) {
        const c = Math.floor(i / (outStr[k] as number)) % (size[k] as number);
        off += ((begin[k] as number) + c * (step[k] as number)) * (xsStr[k] as number);
      }
      out.push(x.data[off] as number);
    }
    return [hostValue(x.dtype, size, out)];
  }
  if (step.some((st) => st !== 1)) ctx.fail('steps other than 1 are supported only on constants');
  return [tensorValue(tf.slice(onnxTensor(x), begin, size))];
}

function cast(ctx: OpContext): Value[] {
  const x = ctx.need(0);
  const to = ctx.int('to', 0);
  const target = tfDtype(to);
  if (to === DT.STRING) ctx.fail('casting to string is not supported');
  if (x.kind === 'host') {
    const conv =
      target === 'float32'
        ? (v: number) => v
        : target === 'bool'
          ? (v: number) => (v !== 0 ? 1 : 0)
          : (v: number) => Math.trunc(v);
    return [hostValue(to, x.shape, x.data.map(conv))];
  }
  return [unary(x, (t) => (t.dtype === target ? t : tf.cast(t, target)))];
}

const elementwise =
  (f: (t: tf.Tensor) => tf.Tensor): OpImpl =>
  (ctx) => [unary(ctx.need(0), f)];

const passThrough: OpImpl = (ctx) => [ctx.need(0)];

/** The opset from which a reduction reads its axes from input 1 instead of the `axes` attribute. */
const AXES_AS_INPUT_SINCE: Readonly<Record<string, number>> = {
  ReduceSum: 13,
  ReduceMean: 18,
  ReduceMax: 18,
};

const reduce =
  (f: (t: tf.Tensor, axes: number[], keep: boolean) => tf.Tensor): OpImpl =>
  (ctx) => {
    const x = ctx.need(0);
    const rank = shapeOf(x).length;
    const asInput = ctx.opset >= (AXES_AS_INPUT_SINCE[ctx.node.opType] ?? 18);
    const given = asInput ? ctx.host(1, 'axes')?.data : ctx.ints('axes');
    const keep = ctx.int('keepdims', 1) === 1;
    if (!given || given.length === 0) {
      // Opset 13+/18+: empty axes reduce everything unless noop_with_empty_axes says "identity".
      if (asInput && ctx.int('noop_with_empty_axes', 0) === 1) return [ctx.need(0)];
      return [tensorValue(f(onnxTensor(x), [...Array(rank).keys()], keep))];
    }
    const axes = [...new Set(given.map((a) => normAxis(ctx, a, rank)))];
    return [tensorValue(f(onnxTensor(x), axes, keep))];
  };

/** LayerNormalization (opset 17): over axes [axis, rank), then scale and bias. */
function layerNorm(ctx: OpContext): Value[] {
  const x = onnxTensor(ctx.need(0));
  const axis = normAxis(ctx, ctx.int('axis', -1), x.rank);
  if (ctx.node.outputs.length > 1 && ctx.node.outputs.slice(1).some((o) => o !== ''))
    ctx.fail('the Mean and InvStdDev outputs are not supported');
  const axes = [...Array(x.rank - axis).keys()].map((k) => k + axis);
  const eps = ctx.float('epsilon', 1e-5);
  const scale = onnxTensor(ctx.need(1));
  const bias = ctx.input(2);
  const mean = tf.mean(x, axes, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), axes, true);
  const y = tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, eps))), scale);
  return [tensorValue(bias ? tf.add(y, onnxTensor(bias)) : y)];
}

export const OPS: Readonly<Record<string, OpImpl>> = {
  Add: (ctx) => binary(ctx, tf.add, (a, b) => a + b),
  Sub: (ctx) => binary(ctx, tf.sub, (a, b) => a - b),
  Mul: (ctx) => binary(ctx, tf.mul, (a, b) => a * b),
  Div: (ctx) => binary(ctx, tf.div, (a, b, isInt) => (isInt ? Math.trunc(a / b) : a / b)),
  AveragePool: averagePool,
  BatchNormalization: batchNorm,
  Cast: cast,
  Clip: clip,
  Concat: concat,
  Constant: constant,
  Conv: conv,
  Erf: elementwise(tf.erf),
  Dropout: (ctx) => {
    const training = ctx.host(2, 'training_mode');
    if (training && training.data[0] !== 0) ctx.fail('training_mode = true is not supported');
    return [ctx.need(0)];
  },
  Flatten: flatten,
  Gather: gather,
  Gemm: gemm,
  GlobalAveragePool: globalPool('mean'),
  GlobalMaxPool: globalPool('max'),
  Identity: passThrough,
  LayerNormalization: layerNorm,
  LeakyRelu: (ctx) => [unary(ctx.need(0), (t) => tf.leakyRelu(t, ctx.float('alpha', 0.01)))],
  LogSoftmax: softmax(true),
  MatMul: matMul,
  MaxPool: maxPool,
  Pad: pad,
  Pow: (ctx) => binary(ctx, tf.pow, (a, b) => a ** b),
  ReduceMax: reduce((t, axes, keep) => tf.max(t, axes, keep)),
  ReduceMean: reduce((t, axes, keep) => tf.mean(t, axes, keep)),
  ReduceSum: reduce((t, axes, keep) => tf.sum(t, axes, keep)),
  Relu: elementwise(tf.relu),
  Reshape: reshape,
  Shape: shape,
  Sigmoid: elementwise(tf.sigmoid),
  Slice: slice,
  Softmax: softmax(false),
  Sqrt: elementwise(tf.sqrt),
  Squeeze: squeeze,
  Tanh: elementwise(tf.tanh),
  Transpose: transpose,
  Unsqueeze: unsqueeze,
};

export const SUPPORTED_OPS: readonly string[] = Object.keys(OPS).sort();

/**
 * Inputs read as constants (shapes, axes, pads, bounds). An initializer that
 * only feeds such inputs is a constant, not a trainable parameter.
 */
export function isHostInput(opType: string, opset: number, index: number): boolean {
  switch (opType) {
    case 'Reshape':
      return index === 1;
    case 'Clip':
      return index >= 1;
    case 'Pad':
      return index >= 1;
    case 'Unsqueeze':
    case 'Squeeze':
      return opset >= 13 && index === 1;
    case 'ReduceSum':
    case 'ReduceMean':
    case 'ReduceMax':
      return opset >= (AXES_AS_INPUT_SINCE[opType] ?? 18) && index === 1;
    case 'Slice':
      return index >= 1;
    case 'Dropout':
      return index >= 1;
    case 'Gather':
      return index === 1;
    default:
      return false;
  }
}

/** BatchNormalization running statistics: not trained by gradients; training mode reports their moving averages instead. */
export function isStatisticInput(opType: string, index: number): boolean {
  return opType === 'BatchNormalization' && (index === 3 || index === 4);
}
