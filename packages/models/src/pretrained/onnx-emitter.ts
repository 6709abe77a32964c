/**
 * A layout-aware layer on top of OnnxGraphBuilder for translating NHWC
 * (TensorFlow) models to ONNX.
 *
 * Every value has a tfjs name and a per-example shape in tfjs layout
 * (`[H, W, C]` for images). Inside the ONNX graph an image value is stored
 * NCHW (what ONNX Conv and pools want) or NHWC (the graph input, softmax over
 * channels); `nchw()` / `nhwc()` emit one Transpose when a value is needed in
 * the other layout and remember it. ONNX value names:
 * - `X` — the value of layer/node X in tfjs layout (non-image values, the
 *   input, and the NHWC twins emitted for outputs and taps);
 * - `X:nchw` — an image value stored NCHW;
 * - `X:linear` — the output of a layer before its fused activation.
 *
 * Weights become float32 initializers named after the tfjs weights (conv
 * kernels transposed from `[kh, kw, cin, cout]` to `[cout, cin, kh, kw]`);
 * 'same' padding becomes explicit pads computed as TensorFlow does (the odd
 * extra row/column at the bottom/right).
 */
import { attr, type OnnxAttr, OnnxGraphBuilder } from '@transferlab/graph';

export type Layout = 'nhwc' | 'nchw' | 'plain';

export interface Val {
  /** ONNX value name. */
  onnx: string;
  /** How the data is stored in ONNX: 'plain' for anything that is not an image ([H, W, C]). */
  layout: Layout;
  /** Shape of one example in tfjs layout. */
  shape: number[];
}

export type Padding = 'same' | 'valid' | [[number, number], [number, number]];

export type Activation =
  | { kind: 'linear' | 'relu' | 'relu6' | 'sigmoid' | 'tanh' | 'softmax' | 'swish' }
  | { kind: 'leaky'; alpha: number }
  | { kind: 'clip'; min: number; max: number };

export interface ConvSpec {
  /** tfjs name of the output. */
  name: string;
  /** Regular conv: `[kh, kw, cin, cout]`; depthwise: `[kh, kw, cin, multiplier]`. */
  kernel: Float32Array;
  kernelShape: [number, number, number, number];
  kernelName: string;
  depthwise: boolean;
  bias?: Float32Array | undefined;
  biasName?: string | undefined;
  strides: [number, number];
  dilations: [number, number];
  padding: Padding;
}

/** TensorFlow's 'same' padding of one spatial dimension: [begin, end]. */
export function samePadding(
  size: number,
  kernel: number,
  stride: number,
  dilation = 1,
): [number, number] {
  const effective = (kernel - 1) * dilation + 1;
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + effective - size, 0);
  const begin = Math.floor(total / 2);
  return [begin, total - begin];
}

const product = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

export class OnnxEmitter {
  readonly g: OnnxGraphBuilder;
  private readonly twins = new Map<string, Val>();
  private readonly shared = new Map<string, string>();

  constructor(
    readonly source: string,
    graphName: string,
  ) {
    this.g = new OnnxGraphBuilder(graphName);
  }

  fail(where: string, msg: string): never {
    throw new Error(`${this.source}: ${where}: ${msg}`);
  }

  /** A name not used yet in the graph: `base`, else `base#2`, `base#3`, … */
  fresh(base: string): string {
    if (!this.g.has(base)) return base;
    for (let k = 2; ; k++) if (!this.g.has(`${base}#${k}`)) return `${base}#${k}`;
  }

  floatConst(
    name: string,
    data: Float32Array | readonly number[],
    dims: readonly number[],
  ): string {
    return this.g.initializer(this.fresh(name), data, dims);
  }

  /** A scalar float constant shared by every node that needs it (Clip bounds). */
  scalar(value: number): string {
    const key = `const:${value}`;
    let name = this.shared.get(key);
    if (!name) {
      name = this.floatConst(key, [value], []);
      this.shared.set(key, name);
    }
    return name;
  }

  int64Const(name: string, data: readonly number[]): string {
    const key = `${name}:${data.join(',')}`;
    let n = this.shared.get(key);
    if (!n) {
      n = this.g.int64Initializer(this.fresh(name), data, [data.length]);
      this.shared.set(key, n);
    }
    return n;
  }

  private node(op: string, inputs: string[], out: string, attrs: Record<string, OnnxAttr> = {}) {
    const o = this.fresh(out);
    return this.g.op(op, inputs, attrs, o, o);
  }

  /** Graph input: NHWC for images. */
  input(name: string, shape: readonly number[]): Val {
    this.g.input(name, ['N', ...shape]);
    return { onnx: name, layout: shape.length === 3 ? 'nhwc' : 'plain', shape: [...shape] };
  }

  private isImage(v: Val): boolean {
    return v.layout !== 'plain';
  }

  private requireImage(v: Val, where: string): void {
    if (!this.isImage(v))
      this.fail(where, `needs an image input [H, W, C], got shape [${v.shape}]`);
  }

  /** The value stored NCHW (one Transpose the first time it is needed). */
  nchw(v: Val): Val {
    if (v.layout !== 'nhwc') return v;
    let t = this.twins.get(v.onnx);
    if (!t) {
      const out = this.node('Transpose', [v.onnx], `${v.onnx}:nchw`, {
        perm: attr.ints([0, 3, 1, 2]),
      });
      t = { onnx: out, layout: 'nchw', shape: v.shape };
      this.twins.set(v.onnx, t);
    }
    return t;
  }

  /** The value stored NHWC (one Transpose the first time), named `name` if given and free. */
  nhwc(v: Val, name?: string): Val {
    if (v.layout !== 'nchw') return v;
    let t = this.twins.get(v.onnx);
    if (!t) {
      const out = this.node('Transpose', [v.onnx], name ?? v.onnx.replace(/:nchw$/, ''), {
        perm: attr.ints([0, 2, 3, 1]),
      });
      t = { onnx: out, layout: 'nhwc', shape: v.shape };
      this.twins.set(v.onnx, t);
    }
    return t;
  }

  private imageOut(name: string): string {
    return `${name}:nchw`;
  }

  conv(x: Val, s: ConvSpec): Val {
    const where = `${s.depthwise ? 'depthwise ' : ''}convolution "${s.name}"`;
    this.requireImage(x, where);
    const [h, w, c] = x.shape as [number, number, number];
    const [kh, kw, kin, kout] = s.kernelShape;
    if (kin !== c) this.fail(where, `kernel expects ${kin} input channels, input has ${c}`);
    const [sh, sw] = s.strides;
    const [dh, dw] = s.dilations;
    const pads: [[number, number], [number, number]] =
      s.padding === 'same'
        ? [samePadding(h, kh, sh, dh), samePadding(w, kw, sw, dw)]
        : s.padding === 'valid'
          ? [
              [0, 0],
              [0, 0],
            ]
          : s.padding;
    const outH = Math.floor((h + pads[0][0] + pads[0][1] - ((kh - 1) * dh + 1)) / sh) + 1;
    const outW = Math.floor((w + pads[1][0] + pads[1][1] - ((kw - 1) * dw + 1)) / sw) + 1;
    if (outH < 1 || outW < 1)
      this.fail(where, `a ${kh}×${kw} kernel does not fit the ${h}×${w} input`);
    const cout = s.depthwise ? c * kout : kout;
    // ONNX weight [cout, cin/group, kh, kw].
    const weight = new Float32Array(s.kernel.length);
    const inPerGroup = s.depthwise ? 1 : c;
    for (let y = 0; y < kh; y++) {
      for (let xx = 0; xx < kw; xx++) {
        for (let i = 0; i < kin; i++) {
          for (let o = 0; o < kout; o++) {
            const src = ((y * kw + xx) * kin + i) * kout + o;
            const oc = s.depthwise ? i * kout + o : o;
            const ic = s.depthwise ? 0 : i;
            weight[((oc * inPerGroup + ic) * kh + y) * kw + xx] = s.kernel[src] as number;
          }
        }
      }
    }
    const inputs = [
      this.nchw(x).onnx,
      this.floatConst(s.kernelName, weight, [cout, inPerGroup, kh, kw]),
    ];
    if (s.bias) {
      if (s.bias.length !== cout) this.fail(where, `bias has ${s.bias.length} values, not ${cout}`);
      inputs.push(this.floatConst(s.biasName ?? `${s.name}/bias`, s.bias, [cout]));
    }
    const out = this.node('Conv', inputs, this.imageOut(s.name), {
      kernel_shape: attr.ints([kh, kw]),
      strides: attr.ints([sh, sw]),
      dilations: attr.ints([dh, dw]),
      pads: attr.ints([pads[0][0], pads[1][0], pads[0][1], pads[1][1]]),
      group: attr.int(s.depthwise ? c : 1),
    });
    return { onnx: out, layout: 'nchw', shape: [outH, outW, cout] };
  }

  /** Inference batch normalization over the last (channel) axis. */
  batchNorm(
    x: Val,
    name: string,
    p: {
      gamma?: { name: string; data: Float32Array } | undefined;
      beta?: { name: string; data: Float32Array } | undefined;
      mean: { name: string; data: Float32Array };
      variance: { name: string; data: Float32Array };
      epsilon: number;
    },
  ): Val {
    const c = x.shape[x.shape.length - 1] as number;
    const where = `batch normalization "${name}"`;
    if (x.layout === 'plain' && x.shape.length !== 1)
      this.fail(where, `only images [H, W, C] and vectors [C] are supported, got [${x.shape}]`);
    const vec = (
      v: { name: string; data: Float32Array } | undefined,
      fill: number,
      what: string,
    ) => {
      const data = v?.data ?? new Float32Array(c).fill(fill);
      if (data.length !== c) this.fail(where, `${what} has ${data.length} values, not ${c}`);
      return this.floatConst(v?.name ?? `${name}/${what}`, data, [c]);
    };
    const inputs = [
      this.nchw(x).onnx,
      vec(p.gamma, 1, 'gamma'),
      vec(p.beta, 0, 'beta'),
      vec(p.mean, 0, 'moving_mean'),
      vec(p.variance, 1, 'moving_variance'),
    ];
    const image = this.isImage(x);
    const out = this.node('BatchNormalization', inputs, image ? this.imageOut(name) : name, {
      epsilon: attr.float(p.epsilon),
    });
    return { onnx: out, layout: image ? 'nchw' : 'plain', shape: [...x.shape] };
  }

  activation(x: Val, a: Activation, name: string): Val {
    if (a.kind === 'linear') return x;
    const image = this.isImage(x);
    const outName = x.layout === 'nchw' ? this.imageOut(name) : name;
    const keep = (onnx: string): Val => ({ onnx, layout: x.layout, shape: [...x.shape] });
    switch (a.kind) {
      case 'relu':
        return keep(this.node('Relu', [x.onnx], outName));
      case 'relu6':
        return keep(this.node('Clip', [x.onnx, this.scalar(0), this.scalar(6)], outName));
      case 'clip':
        return keep(this.node('Clip', [x.onnx, this.scalar(a.min), this.scalar(a.max)], outName));
      case 'sigmoid':
        return keep(this.node('Sigmoid', [x.onnx], outName));
      case 'tanh':
        return keep(this.node('Tanh', [x.onnx], outName));
      case 'leaky':
        return keep(this.node('LeakyRelu', [x.onnx], outName, { alpha: attr.float(a.alpha) }));
      case 'swish': {
        const sig = this.node('Sigmoid', [x.onnx], `${outName}:sigmoid`);
        return keep(this.node('Mul', [x.onnx, sig], outName));
      }
      case 'softmax': {
        // Over the last tfjs axis: channels, so an image goes NHWC first.
        const v = image ? this.nhwc(x) : x;
        const out = this.node('Softmax', [v.onnx], name, { axis: attr.int(-1) });
        return { onnx: out, layout: v.layout, shape: [...x.shape] };
      }
    }
  }

  /** Elementwise Add/Sub/Mul/Div of two values (numpy broadcasting in tfjs layout). */
  binary(op: 'Add' | 'Sub' | 'Mul' | 'Div', a: Val, b: Val, name: string): Val {
    const where = `${op} "${name}"`;
    const ra = a.shape.length;
    const rb = b.shape.length;
    const r = Math.max(ra, rb);
    const shape: number[] = [];
    for (let i = 0; i < r; i++) {
      const da = a.shape[ra - r + i] ?? 1;
      const db = b.shape[rb - r + i] ?? 1;
      if (da !== db && da !== 1 && db !== 1)
        this.fail(where, `cannot broadcast [${a.shape}] with [${b.shape}]`);
      shape.push(da === 1 ? db : da);
    }
    if (this.isImage(a) !== this.isImage(b))
      this.fail(where, `mixes an image [${a.shape}] with a non-image value [${b.shape}]`);
    if (this.isImage(a)) {
      const [x, y] = a.layout === b.layout ? [a, b] : [this.nchw(a), this.nchw(b)];
      const out = this.node(op, [x.onnx, y.onnx], x.layout === 'nchw' ? this.imageOut(name) : name);
      return { onnx: out, layout: x.layout, shape };
    }
    return { onnx: this.node(op, [a.onnx, b.onnx], name), layout: 'plain', shape };
  }

  /**
   * Elementwise op of a value and a constant (`constFirst`: the constant is the
   * left operand). The constant's shape is in tfjs layout, without the batch
   * dimension (a leading 1 of a rank-4 constant is dropped).
   */
  binaryConst(
    op: 'Add' | 'Sub' | 'Mul' | 'Div',
    x: Val,
    c: { name: string; data: Float32Array; shape: readonly number[] },
    name: string,
    constFirst = false,
  ): Val {
    const where = `${op} "${name}"`;
    let cs = [...c.shape];
    if (cs.length === x.shape.length + 1 && cs[0] === 1) cs = cs.slice(1);
    if (cs.length > x.shape.length)
      this.fail(where, `constant of shape [${c.shape}] against a value of shape [${x.shape}]`);
    for (let i = 0; i < cs.length; i++) {
      const dc = cs[cs.length - 1 - i] as number;
      const dx = x.shape[x.shape.length - 1 - i] as number;
      if (dc !== 1 && dc !== dx)
        this.fail(where, `cannot broadcast constant [${c.shape}] to [${x.shape}]`);
    }
    let data = c.data;
    let dims = cs;
    if (x.layout === 'nchw' && c.data.length > 1) {
      // Rearrange a [h, w, ch] (right-aligned) constant to [ch, h, w].
      const [h, w, ch] = [...Array(3 - cs.length).fill(1), ...cs] as [number, number, number];
      data = new Float32Array(c.data.length);
      for (let i = 0; i < h; i++)
        for (let j = 0; j < w; j++)
          for (let k = 0; k < ch; k++)
            data[(k * h + i) * w + j] = c.data[(i * w + j) * ch + k] as number;
      dims = [ch, h, w];
    } else if (c.data.length === 1) {
      dims = [];
    }
    const k = this.floatConst(c.name, data, dims);
    const inputs = constFirst ? [k, x.onnx] : [x.onnx, k];
    const out = this.node(op, inputs, x.layout === 'nchw' ? this.imageOut(name) : name);
    return { onnx: out, layout: x.layout, shape: [...x.shape] };
  }

  pool(
    x: Val,
    kind: 'avg' | 'max',
    kernel: [number, number],
    strides: [number, number],
    padding: Padding,
    name: string,
  ): Val {
    const where = `${kind} pooling "${name}"`;
    this.requireImage(x, where);
    const [h, w, c] = x.shape as [number, number, number];
    const pads: [[number, number], [number, number]] =
      padding === 'same'
        ? [samePadding(h, kernel[0], strides[0]), samePadding(w, kernel[1], strides[1])]
        : padding === 'valid'
          ? [
              [0, 0],
              [0, 0],
            ]
          : padding;
    const outH = Math.floor((h + pads[0][0] + pads[0][1] - kernel[0]) / strides[0]) + 1;
    const outW = Math.floor((w + pads[1][0] + pads[1][1] - kernel[1]) / strides[1]) + 1;
    if (outH < 1 || outW < 1)
      this.fail(where, `a ${kernel[0]}×${kernel[1]} window does not fit the ${h}×${w} input`);
    // AveragePool's default count_include_pad = 0 matches TensorFlow's 'same' average.
    const out = this.node(
      kind === 'avg' ? 'AveragePool' : 'MaxPool',
      [this.nchw(x).onnx],
      this.imageOut(name),
      {
        kernel_shape: attr.ints(kernel),
        strides: attr.ints(strides),
        pads: attr.ints([pads[0][0], pads[1][0], pads[0][1], pads[1][1]]),
      },
    );
    return { onnx: out, layout: 'nchw', shape: [outH, outW, c] };
  }

  globalPool(x: Val, kind: 'avg' | 'max', keepDims: boolean, name: string): Val {
    this.requireImage(x, `global ${kind} pooling "${name}"`);
    const c = x.shape[2] as number;
    const op = kind === 'avg' ? 'GlobalAveragePool' : 'GlobalMaxPool';
    const pooled: Val = {
      onnx: this.node(op, [this.nchw(x).onnx], keepDims ? this.imageOut(name) : `${name}:pooled`),
      layout: 'nchw',
      shape: [1, 1, c],
    };
    return keepDims ? pooled : this.flatten(pooled, name);
  }

  /** Flatten in tfjs (NHWC) element order. */
  flatten(x: Val, name: string): Val {
    const shape = [product(x.shape)];
    if (x.layout === 'plain' && x.shape.length === 1) return x;
    // [1, 1, C] has the same order in both layouts: no transpose.
    const src = x.layout === 'nchw' && (x.shape[0] !== 1 || x.shape[1] !== 1) ? this.nhwc(x) : x;
    const out = this.node('Flatten', [src.onnx], name, { axis: attr.int(1) });
    return { onnx: out, layout: 'plain', shape };
  }

  /** Reshape to a per-example shape (tfjs layout); images are rebuilt NHWC. */
  reshape(x: Val, shape: readonly number[], name: string): Val {
    if (product(shape) !== product(x.shape))
      this.fail(`reshape "${name}"`, `cannot reshape [${x.shape}] to [${shape}]`);
    if (shape.length === 1) return this.flatten(x, name);
    const src = this.nhwc(x);
    const target = this.int64Const(`${name}/shape`, [-1, ...shape]);
    const out = this.node('Reshape', [src.onnx, target], name);
    return { onnx: out, layout: shape.length === 3 ? 'nhwc' : 'plain', shape: [...shape] };
  }

  /** y = x · W + b with W `[in, out]` (or `[out, in]` with transB). */
  dense(
    x: Val,
    w: { name: string; data: Float32Array; shape: [number, number] },
    b: { name: string; data: Float32Array } | undefined,
    name: string,
    transB = false,
  ): Val {
    const where = `dense "${name}"`;
    if (x.layout !== 'plain' || x.shape.length !== 1)
      this.fail(where, `needs a vector input [features], got [${x.shape}] (flatten first)`);
    const [rows, cols] = w.shape;
    const fin = transB ? cols : rows;
    const fout = transB ? rows : cols;
    if (x.shape[0] !== fin) this.fail(where, `kernel expects ${fin} inputs, got ${x.shape[0]}`);
    const inputs = [x.onnx, this.floatConst(w.name, w.data, w.shape)];
    if (b) {
      if (b.data.length !== fout) this.fail(where, `bias has ${b.data.length} values, not ${fout}`);
      inputs.push(this.floatConst(b.name, b.data, [fout]));
    }
    const out = this.node('Gemm', inputs, name, { transB: attr.int(transB ? 1 : 0) });
    return { onnx: out, layout: 'plain', shape: [fout] };
  }

  /** Zero (or constant) padding of an image's height and width. */
  pad(x: Val, pads: [[number, number], [number, number]], name: string, value = 0): Val {
    this.requireImage(x, `padding "${name}"`);
    const [h, w, c] = x.shape as [number, number, number];
    const [[t, b], [l, r]] = pads;
    const inputs = [this.nchw(x).onnx, this.int64Const(`${name}/pads`, [0, 0, t, l, 0, 0, b, r])];
    if (value !== 0) inputs.push(this.scalar(value));
    const out = this.node('Pad', inputs, this.imageOut(name), { mode: attr.string('constant') });
    return { onnx: out, layout: 'nchw', shape: [h + t + b, w + l + r, c] };
  }

  /** Concatenate along a tfjs axis of the per-example shape (-1: last). */
  concat(xs: readonly Val[], axis: number, name: string): Val {
    const where = `concatenation "${name}"`;
    const first = xs[0];
    if (!first) this.fail(where, 'no inputs');
    const rank = first.shape.length;
    const a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank)
      this.fail(where, `axis ${axis} out of range for shape [${first.shape}]`);
    const shape = [...first.shape];
    shape[a] = 0;
    for (const x of xs) {
      if (x.shape.length !== rank || x.shape.some((d, i) => i !== a && d !== first.shape[i]))
        this.fail(where, `shapes [${first.shape}] and [${x.shape}] do not match`);
      shape[a] = (shape[a] as number) + (x.shape[a] as number);
    }
    if (this.isImage(first)) {
      const ins = xs.map((x) => this.nchw(x).onnx);
      const out = this.node('Concat', ins, this.imageOut(name), {
        axis: attr.int([2, 3, 1][a] as number),
      });
      return { onnx: out, layout: 'nchw', shape };
    }
    const out = this.node(
      'Concat',
      xs.map((x) => x.onnx),
      name,
      { axis: attr.int(a + 1) },
    );
    return { onnx: out, layout: 'plain', shape };
  }

  /** Make `v` a graph output named `name`, in tfjs layout. */
  output(v: Val, name: string): void {
    let t = v.layout === 'nchw' ? this.nhwc(v, name) : v;
    if (t.onnx !== name) {
      if (this.g.has(name))
        this.fail(`output "${name}"`, 'the name is already used by another value');
      t = { ...t, onnx: this.g.op('Identity', [t.onnx], {}, name, name) };
    }
    this.g.output(t.onnx, ['N', ...t.shape]);
  }
}
