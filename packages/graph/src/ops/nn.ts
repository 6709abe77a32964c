/**
 * Convolutions, pooling, normalisation and resizing: shape inference and
 * gradient rules (NCHW, any number of spatial axes unless said otherwise).
 *
 * The gradients are written with ops onnxruntime's CPU provider runs fast,
 * and every op they emit has a rule of its own, so a gradient graph can be
 * differentiated again (second-order meta-gradients):
 *
 * - Conv: the input gradient is a ConvTranspose with the same weights
 *   (output_padding restores the rows a strided window never reached) —
 *   or, for stride 1, a Conv with the weights transposed and flipped,
 *   which onnxruntime runs faster unless dY has more channels (see
 *   `inputGradAsConv`). The
 *   weight gradient is a MatMul of the input's windows with dY: for stride
 *   1 the windows are shifted slices of the padded input (one MatMul per
 *   window position; for 2-D windows whose output rows are as wide as the
 *   input's, contiguous slices of the row-flattened input, `rowWindows`);
 *   for strided convs, im2col + one batched MatMul, where
 *   im2col is itself a Conv — fixed one-hot filters [C·K, 1, k…] with
 *   group = C copy each window position into a channel, exactly (products
 *   with 0 and 1 only). Either is ~2× faster in onnxruntime than the
 *   textbook Conv over transposed tensors (3×3 16→32 on [64, 16, 28, 28],
 *   one thread: ~14 ms for that, ~6 ms im2col + MatMul, ~4.5 ms slices).
 * - ConvTranspose: the adjoint pair of the above (input gradient = Conv with
 *   the same weights; weight gradient = the same MatMul over the windows of
 *   the output gradient).
 * - MaxPool (no Indices output: onnxruntime's is ~10× slower than the pool):
 *   the gradient goes to the FIRST maximum of each window in row-major
 *   window order, as in PyTorch and tfjs — ties are common (zeros after a
 *   ReLU), and a plain `x == upsample(pooled)` mask would send the gradient
 *   to every maximum. Windows that tile the input (stride = kernel, the
 *   backbones' 2×2/2) rank the maxima of each tile by position and pool the
 *   ranks again; overlapping or padded windows use im2col + ArgMax and
 *   col2im (a ConvTranspose with the one-hot filters) — exact too, about
 *   twice as slow (im2col materialises K copies of the input). GlobalMaxPool
 *   is the tiled case with one window. (ArgMax gets a shape rule here.)
 * - AveragePool / GlobalAveragePool: the gradient divided by each window's
 *   count and spread back over the window (a nearest Resize when windows
 *   tile, else a ConvTranspose with ones; a multiply for the global pool).
 * - Resize (nearest and linear, the last two axes, constant scales or
 *   sizes): separable, so the gradient is each axis's transposed
 *   interpolation matrix as a constant MatMul — or, for the integer nearest
 *   upsampling (asymmetric, floor) the pool gradients use, a sum pool.
 * - Spreading a pooled value over its window: a nearest Resize (asymmetric,
 *   floor), the one mode onnxruntime runs fast; broadcasting
 *   [N, C, h, 1, w, 1] against [N, C, h, 2, w, 2] (Equal, Mul) or an Expand
 *   is ~10× slower there.
 * - BatchNormalization: inference mode (running statistics) and training
 *   mode (training_mode = 1). onnxruntime-node's CPU kernel (1.30) does run
 *   training_mode = 1, with ONNX's conventions: batch mean and BIASED
 *   variance, running = input·momentum + batch·(1 − momentum), the running
 *   variance updated from the biased variance too. But it writes the updated
 *   statistics INTO its running-mean/var inputs (the caller's feed buffers,
 *   or the initializers, across runs) whenever its running outputs are not
 *   graph outputs — so the training engine should not use it: use
 *   `batchNormTraining` (../batch-norm.ts), the same computation from
 *   primitive ops with PyTorch's convention (running variance from the
 *   UNBIASED variance), whose gradient comes from the primitive ops' rules.
 *   The rule here serves imported graphs: its gradient recomputes the batch
 *   statistics from primitive ops.
 */
import { attr, type OnnxAttr } from '../attr.js';
import type { GraphNode, OnnxDim, OnnxGraphBuilder, Shape, ValueInfo } from '../builder.js';
import { DT, decodeTensor } from '../proto.js';
import type { GradContext, OpRule } from './types.js';
import {
  constInput,
  dimsOf,
  emit,
  floatAttr,
  intAttr,
  intsAttr,
  normAxis,
  stringAttr,
  typeOf,
} from './util.js';

type G = OnnxGraphBuilder;

const product = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);
const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from);

function numeric(dims: Shape, what: string): number[] {
  if (dims.some((d) => typeof d !== 'number'))
    throw new Error(`${what} must have fixed sizes for a gradient, got [${dims}]`);
  return dims as number[];
}

// ---------------------------------------------------------------------------
// Window geometry (Conv, ConvTranspose, pools)

/** A sliding window along the spatial axes, with its pads resolved (auto_pad applied). */
interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  begin: number[];
  end: number[];
}

/** The span one window covers along axis i: (k − 1)·d + 1. */
const extent = (w: Window, i: number) =>
  ((w.kernel[i] as number) - 1) * (w.dilations[i] as number) + 1;

/**
 * ONNX's window rules for Conv and the pools: explicit pads, or auto_pad
 * (SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning),
 * and the output size (floor, or ceil_mode's ceil with PyTorch's rule that
 * the last window must start inside the input or its begin pad).
 */
function resolveWindow(
  node: GraphNode,
  spatial: Shape,
  kernel: readonly number[],
  ceil = false,
): { win: Window; out: OnnxDim[] } {
  const r = kernel.length;
  if (spatial.length !== r)
    throw new Error(
      `kernel_shape [${kernel}] does not match the input's ${spatial.length} spatial axes`,
    );
  const strides = [...(intsAttr(node, 'strides') ?? kernel.map(() => 1))];
  const dilations = [...(intsAttr(node, 'dilations') ?? kernel.map(() => 1))];
  const autoPad = stringAttr(node, 'auto_pad', 'NOTSET');
  const pads = intsAttr(node, 'pads') ?? Array(2 * r).fill(0);
  const win: Window = { kernel: [...kernel], strides, dilations, begin: [], end: [] };
  const out: OnnxDim[] = [];
  for (let i = 0; i < r; i++) {
    const d = spatial[i] as OnnxDim;
    const s = strides[i] as number;
    const ext = extent(win, i);
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      if (typeof d !== 'number') {
        win.begin.push(Number.NaN);
        win.end.push(Number.NaN);
        out.push(`ceil(${d}/${s})`);
        continue;
      }
      const o = Math.ceil(d / s);
      const total = Math.max(0, (o - 1) * s + ext - d);
      const small = Math.floor(total / 2);
      win.begin.push(autoPad === 'SAME_UPPER' ? small : total - small);
      win.end.push(autoPad === 'SAME_UPPER' ? total - small : small);
      out.push(o);
      continue;
    }
    const b = autoPad === 'VALID' ? 0 : (pads[i] as number);
    const e = autoPad === 'VALID' ? 0 : (pads[i + r] as number);
    win.begin.push(b);
    win.end.push(e);
    if (typeof d !== 'number') {
      out.push(`${node.opType}(${d})`);
      continue;
    }
    const span = d + b + e - ext;
    if (span < 0)
      throw new Error(`a window of ${ext} does not fit an axis of ${d} (+ pads ${b}, ${e})`);
    let o = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
    if (ceil && (o - 1) * s >= d + b) o -= 1;
    out.push(o);
  }
  return { win, out };
}

function windowAttrs(win: Window, extra: Record<string, OnnxAttr> = {}): Record<string, OnnxAttr> {
  return {
    kernel_shape: attr.ints(win.kernel),
    strides: attr.ints(win.strides),
    dilations: attr.ints(win.dilations),
    pads: attr.ints([...win.begin, ...win.end]),
    ...extra,
  };
}

/**
 * ConvTranspose attributes that are the adjoint of the window `win` taking
 * `inSpatial` to `outSpatial`: output_padding restores the rows a strided
 * window never reached; a ceil_mode overhang past the end pad is cropped by
 * a larger end pad.
 */
function adjointAttrs(
  win: Window,
  inSpatial: readonly number[],
  outSpatial: readonly number[],
  extra: Record<string, OnnxAttr> = {},
): Record<string, OnnxAttr> {
  const end = [...win.end];
  const outputPadding = inSpatial.map((d, i) => {
    const covered =
      ((outSpatial[i] as number) - 1) * (win.strides[i] as number) +
      extent(win, i) -
      (win.begin[i] as number) -
      (end[i] as number);
    const p = d - covered;
    if (p < 0) end[i] = (end[i] as number) - p;
    return Math.max(0, p);
  });
  return {
    ...windowAttrs({ ...win, end }),
    ...(outputPadding.some((p) => p > 0) ? { output_padding: attr.ints(outputPadding) } : {}),
    ...extra,
  };
}

/** The spatial sizes of a value [N, C, …spatial], fixed. */
function spatialOf(g: G, x: string, what: string): number[] {
  const d = g.dims(x);
  if (!d) throw new Error(`the shape of ${what} "${x}" is unknown`);
  return numeric(d.slice(2), `the spatial axes of ${what} "${x}"`);
}

function channelsOf(g: G, x: string, what: string): number {
  const c = g.dims(x)?.[1];
  if (typeof c !== 'number') throw new Error(`the channel count of ${what} "${x}" is unknown`);
  return c;
}

// ---------------------------------------------------------------------------
// Fixed filters, one initializer per graph and shape

const filterCache = new WeakMap<G, Map<string, string>>();

function cachedFilter(
  g: G,
  key: string,
  make: () => { data: Float32Array; dims: number[] },
): string {
  let m = filterCache.get(g);
  if (!m) {
    m = new Map();
    filterCache.set(g, m);
  }
  const hit = m.get(key);
  if (hit && g.has(hit)) return hit;
  const { data, dims } = make();
  const name = g.initializer(g.fresh(key.split(':')[0] as string), data, dims);
  m.set(key, name);
  return name;
}

/** [C·K, 1, …kernel]: filter c·K + k picks window position k (row-major) of channel c. */
function oneHotFilters(g: G, channels: number, kernel: readonly number[]): string {
  return cachedFilter(g, `im2col_onehot:${channels}:${kernel}`, () => {
    const k = product(kernel);
    const data = new Float32Array(channels * k * k);
    for (let c = 0; c < channels; c++) for (let j = 0; j < k; j++) data[(c * k + j) * k + j] = 1;
    return { data, dims: [channels * k, 1, ...kernel] };
  });
}

/** [C, 1, …kernel] of ones: a depthwise window sum. */
function onesFilters(g: G, channels: number, kernel: readonly number[]): string {
  return cachedFilter(g, `window_ones:${channels}:${kernel}`, () => ({
    data: new Float32Array(channels * product(kernel)).fill(1),
    dims: [channels, 1, ...kernel],
  }));
}

/** The windows of x [N, C, …] as channels: [N, C·K, …out], channel c·K + k = window position k of channel c. */
function im2col(g: G, x: string, channels: number, win: Window): string {
  return g.op(
    'Conv',
    [x, oneHotFilters(g, channels, win.kernel)],
    windowAttrs(win, { group: attr.int(channels) }),
  );
}

/**
 * For stride 1: the K shifted views of src [N, C, …in] a window reads —
 * view k holds, at output position o, the element at window position k
 * (row-major) of window o, zero in the pads. Plain slices of the padded
 * input (a strided axis would need step slices, slow in onnxruntime: im2col
 * is used there instead).
 */
function windowViews(g: G, src: string, win: Window, outSpatial: readonly number[]): string[] {
  const inSpatial = spatialOf(g, src, 'a window source');
  const r = inSpatial.length;
  // Rows read, in padded coordinates: [0, out + (k − 1)·d). Crop what no window reaches, pad the rest.
  const span = outSpatial.map((o, i) => o + extent(win, i) - 1);
  const keep = inSpatial.map((d, i) => Math.min(d, (span[i] as number) - (win.begin[i] as number)));
  let v = src;
  if (keep.some((k, i) => k < (inSpatial[i] as number)))
    v = g.op('Slice', [v, g.ints(keep.map(() => 0)), g.ints(keep), g.ints(range(r, 2))]);
  const back = keep.map((k, i) => (span[i] as number) - (win.begin[i] as number) - k);
  if ([...win.begin, ...back].some((p) => p > 0))
    v = g.op('Pad', [v, g.ints([0, 0, ...win.begin, 0, 0, ...back])]);
  const views: string[] = [];
  for (let k = 0; k < product(win.kernel); k++) {
    const starts: number[] = [];
    let rest = k;
    for (let i = r - 1; i >= 0; i--) {
      starts[i] = (rest % (win.kernel[i] as number)) * (win.dilations[i] as number);
      rest = Math.floor(rest / (win.kernel[i] as number));
    }
    const axes = range(r).filter((i) => starts[i] !== 0 || outSpatial[i] !== span[i]);
    views.push(
      axes.length === 0
        ? v
        : g.op('Slice', [
            v,
            g.ints(axes.map((i) => starts[i] as number)),
            g.ints(axes.map((i) => (starts[i] as number) + (outSpatial[i] as number))),
            g.ints(axes.map((i) => i + 2)),
          ]),
    );
  }
  return views;
}

/**
 * For stride 1 over two spatial axes where the output rows are as wide as
 * the input's (the horizontal pads add up to the window's extent − 1, as
 * "same" padding does): each window position as ONE contiguous slice of
 * the input with its rows flattened — padded above and below by whole
 * rows, plus the left/right pad as single elements at the two ends — and
 * the `a` to pair it with. Output position (y, x) reads flat element
 * (y + i·dₕ)·W + x + j·d_w: a plain copy per channel, where a 2-D window
 * slice copies rows of W elements (3×3 dW on [64, 32, 14, 14]: 2.9 →
 * 2.0 ms). A window position that reaches δ columns left or right of the
 * output reads the neighbouring row's edge at the δ output columns nearest
 * that side instead of a zero pad: `a` is zeroed there, or, when the input
 * has fewer channels, the input columns only those reads reach (one
 * multiply with a constant mask per distinct δ). Undefined where it does
 * not apply.
 */
function rowWindows(
  g: G,
  src: string,
  a: string,
  win: Window,
  outSpatial: readonly number[],
): { view: string; a: string }[] | undefined {
  const inSpatial = spatialOf(g, src, 'a window source');
  if (inSpatial.length !== 2 || win.strides.some((s) => s !== 1)) return undefined;
  const [H, W] = inSpatial as [number, number];
  const [Ho, Wo] = outSpatial as [number, number];
  const [top, left] = win.begin as [number, number];
  const [bottom, right] = win.end as [number, number];
  if (Wo !== W || left + right !== extent(win, 1) - 1) return undefined;
  const channels = channelsOf(g, src, 'a window source');
  const L = Ho * W;
  const flatLength = (top + H + bottom) * W + left + right;
  let flat = g.op('Reshape', [src, g.ints([0, channels, H * W])]);
  if (top + bottom + left + right > 0)
    flat = g.op('Pad', [flat, g.ints([0, 0, top * W + left, 0, 0, bottom * W + right])]);
  // Zero what a wrapped read meets on the side with fewer channels: in `a`,
  // the output columns that wrap; else in the input, the columns only a
  // wrapped read reaches (the last −δ for δ < 0, the first δ for δ > 0).
  const maskInput = channels < channelsOf(g, a, 'a weight-gradient operand');
  const masked = new Map<number, string>();
  const maskedFor = (shift: number): string => {
    const base = maskInput ? flat : a;
    if (shift === 0) return base;
    const hit = masked.get(shift);
    if (hit) return hit;
    const mask = maskInput
      ? cachedFilter(g, `row_wrap_input_mask:${flatLength}:${left}:${W}:${shift}`, () => {
          const data = new Float32Array(flatLength).fill(1);
          for (let f = 0; f < flatLength; f++) {
            const col = (((f - left) % W) + W) % W;
            if ((shift < 0 && col >= W + shift) || (shift > 0 && col < shift)) data[f] = 0;
          }
          return { data, dims: [flatLength] };
        })
      : cachedFilter(g, `row_wrap_mask:${Ho}:${W}:${shift}`, () => {
          const data = new Float32Array(L).fill(1);
          for (let p = 0; p < L; p++) {
            const x = p % W;
            if (x + shift < 0 || x + shift >= W) data[p] = 0;
          }
          return { data, dims: [Ho, W] };
        });
    const m = emit.mul(g, base, mask);
    masked.set(shift, m);
    return m;
  };
  const [kh, kw] = win.kernel as [number, number];
  const [dh, dw] = win.dilations as [number, number];
  const pairs: { view: string; a: string }[] = [];
  for (let i = 0; i < kh; i++)
    for (let j = 0; j < kw; j++) {
      const offset = i * dh * W + j * dw;
      const shift = j * dw - left;
      const source = maskInput ? maskedFor(shift) : flat;
      pairs.push({
        view:
          offset === 0 && L === flatLength
            ? source
            : g.op('Slice', [source, g.ints([offset]), g.ints([offset + L]), g.ints([2])]),
        a: maskInput ? a : maskedFor(shift),
      });
    }
  return pairs;
}

/**
 * The weight gradient shared by Conv and ConvTranspose: per group, Σ over
 * the batch and the output positions of a · (window view of src)ᵀ,
 * reshaped to [Ca, Cs/G, …kernel]. (Conv: a = dY, src = X. ConvTranspose:
 * a = X, src = dY.) Two forms, whichever onnxruntime runs faster:
 * - stride 1: one batched MatMul per window position, view_k
 *   [N, G, Cs/G, L] × aᵀ [N, G, L, Ca/G] (the transpose fused into the
 *   MatMul), summed over N and stacked; depthwise, a multiply and a sum.
 *   ~40% faster than im2col: the views are plain slices, nothing is
 *   materialised K times over.
 * - strided: im2col (the one-hot Conv, computing only at the output
 *   positions) + one batched MatMul, summed over N.
 */
function weightGrad(
  g: G,
  a: string,
  aChannels: number,
  src: string,
  srcChannels: number,
  group: number,
  win: Window,
): string {
  const outSpatial = spatialOf(g, a, 'a weight-gradient operand');
  const L = product(outSpatial);
  const K = product(win.kernel);
  const ga = aChannels / group;
  const gs = srcChannels / group;
  if (win.strides.some((s) => s > 1)) {
    const At = emit.transpose(g, g.op('Reshape', [a, g.ints([0, group, ga, L])]), [0, 1, 3, 2]);
    const P = g.op('Reshape', [im2col(g, src, srcChannels, win), g.ints([0, group, gs * K, L])]);
    // [G, Cs/G·K, Ca/G] → [G, Ca/G, Cs/G·K] → [Ca, Cs/G, …kernel]
    const summed = emit.transpose(
      g,
      emit.reduceSum(g, g.op('MatMul', [P, At]), [0], false),
      [0, 2, 1],
    );
    return g.op('Reshape', [summed, g.ints([aChannels, gs, ...win.kernel])]);
  }
  const pairs =
    rowWindows(g, src, a, win, outSpatial) ??
    windowViews(g, src, win, outSpatial).map((view) => ({ view, a }));
  const stack = (parts: string[], axis: number) => {
    const lifted = parts.map((p) => g.op('Unsqueeze', [p, g.ints([axis])]));
    return lifted.length === 1
      ? (lifted[0] as string)
      : g.op('Concat', lifted, { axis: attr.int(axis) });
  };
  const shaped = new Map<string, string>();
  const once = (v: string, make: () => string) => {
    const hit = shaped.get(v);
    if (hit) return hit;
    const out = make();
    shaped.set(v, out);
    return out;
  };
  if (ga === 1 && gs === 1) {
    const perPosition = pairs.map(({ view, a: ak }) =>
      emit.reduceSum(
        g,
        emit.mul(
          g,
          g.op('Reshape', [view, g.ints([0, srcChannels, L])]),
          once(ak, () => g.op('Reshape', [ak, g.ints([0, aChannels, L])])),
        ),
        [0, 2],
        false,
      ),
    );
    return g.op('Reshape', [stack(perPosition, 1), g.ints([aChannels, 1, ...win.kernel])]);
  }
  const perPosition = pairs.map(({ view, a: ak }) =>
    emit.reduceSum(
      g,
      g.op('MatMul', [
        g.op('Reshape', [view, g.ints([0, group, gs, L])]),
        once(ak, () =>
          emit.transpose(g, g.op('Reshape', [ak, g.ints([0, group, ga, L])]), [0, 1, 3, 2]),
        ),
      ]),
      [0],
      false,
    ),
  );
  // [G, Cs/G, Ca/G, K] → [G, Ca/G, Cs/G, K] → [Ca, Cs/G, …kernel]
  const stacked = emit.transpose(g, stack(perPosition, 3), [0, 2, 1, 3]);
  return g.op('Reshape', [stacked, g.ints([aChannels, gs, ...win.kernel])]);
}

/** Σ of dY over every axis but the channel axis 1: a bias gradient [C]. */
function biasGrad(g: G, dy: string): string {
  const r = (g.dims(dy) as Shape).length;
  return emit.reduceSum(
    g,
    dy,
    range(r).filter((i) => i !== 1),
    false,
  );
}

// ---------------------------------------------------------------------------
// Conv and ConvTranspose

function kernelOf(g: G, node: GraphNode): number[] {
  const k = intsAttr(node, 'kernel_shape');
  if (k) return [...k];
  return numeric(dimsOf(g, node, 1).slice(2), 'the kernel (weights)');
}

function convGeometry(g: G, node: GraphNode) {
  const x = dimsOf(g, node, 0);
  const w = dimsOf(g, node, 1);
  const group = intAttr(node, 'group', 1);
  const kernel = kernelOf(g, node);
  const { win, out } = resolveWindow(node, x.slice(2), kernel);
  return { x, w, group, kernel, win, out };
}

/** ConvTranspose's own geometry: pads from output_shape or auto_pad when given (ONNX's split rule). */
function convTransposeGeometry(g: G, node: GraphNode) {
  const x = dimsOf(g, node, 0);
  const w = dimsOf(g, node, 1);
  const group = intAttr(node, 'group', 1);
  const kernel = kernelOf(g, node);
  const r = kernel.length;
  const strides = [...(intsAttr(node, 'strides') ?? kernel.map(() => 1))];
  const dilations = [...(intsAttr(node, 'dilations') ?? kernel.map(() => 1))];
  const outputPadding = [...(intsAttr(node, 'output_padding') ?? kernel.map(() => 0))];
  const autoPad = stringAttr(node, 'auto_pad', 'NOTSET');
  const outputShape = intsAttr(node, 'output_shape');
  const pads = intsAttr(node, 'pads') ?? Array(2 * r).fill(0);
  const win: Window = { kernel, strides, dilations, begin: [], end: [] };
  const out: OnnxDim[] = [];
  for (let i = 0; i < r; i++) {
    const d = x[i + 2] as OnnxDim;
    const s = strides[i] as number;
    const full = (n: number) => s * (n - 1) + (outputPadding[i] as number) + extent(win, i);
    const target = outputShape
      ? (outputShape[outputShape.length - r + i] as number)
      : autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER'
        ? typeof d === 'number'
          ? d * s
          : undefined
        : undefined;
    if (target !== undefined && typeof d === 'number') {
      const total = full(d) - target;
      const half = Math.floor(total / 2);
      win.begin.push(autoPad === 'SAME_UPPER' ? half : total - half);
      win.end.push(autoPad === 'SAME_UPPER' ? total - half : half);
      out.push(target);
    } else if (typeof d !== 'number') {
      win.begin.push(Number.NaN);
      win.end.push(Number.NaN);
      out.push(target ?? `ConvTranspose(${d})`);
    } else {
      const b = autoPad === 'VALID' ? 0 : (pads[i] as number);
      const e = autoPad === 'VALID' ? 0 : (pads[i + r] as number);
      win.begin.push(b);
      win.end.push(e);
      out.push(full(d) - b - e);
    }
  }
  return { x, w, group, kernel, win, out, outputPadding };
}

/**
 * A stride-1 Conv's input gradient as a Conv: dY correlated with the
 * weights transposed per group ([C, M/G, …k]) and flipped in space (a
 * MatMul with the exchange matrix: exact), padded by extent − 1 − pad on
 * each side. onnxruntime's Conv (im2col of dY, or none for 1×1) beats its
 * ConvTranspose (GEMM + a scalar col2im of dX) except where dY has more
 * channels than dX under a k > 1 kernel: 3×3 16→16 on [64, 16, 28, 28]
 * 4.5 → 3.05 ms, depthwise 3×3 on [8, 144, 56, 56] 14.3 → 6.8 ms, 1×1
 * 144→24 at 56² 2.3 → 1.7 ms; 3×3 16→32 at 14² 1.35 → 1.74 ms (kept as
 * ConvTranspose). Undefined where it does not apply.
 */
function inputGradAsConv(
  g: G,
  dy: string,
  w: string,
  C: number,
  M: number,
  group: number,
  win: Window,
): string | undefined {
  const K = product(win.kernel);
  if (win.strides.some((s) => s !== 1)) return undefined;
  if (K > 1 && M > C) return undefined;
  const begin = win.begin.map((b, i) => extent(win, i) - 1 - b);
  const end = win.end.map((e, i) => extent(win, i) - 1 - e);
  if ([...begin, ...end].some((p) => !(p >= 0))) return undefined;
  const gm = M / group;
  const gc = C / group;
  // [M, C/G, …k] → [G, C/G, M/G, K], flipped along K → [C, M/G, …k]
  let t = emit.transpose(g, g.op('Reshape', [w, g.ints([group, gm, gc, K])]), [0, 2, 1, 3]);
  if (K > 1) {
    const exchange = cachedFilter(g, `kernel_flip:${K}`, () => {
      const data = new Float32Array(K * K);
      for (let i = 0; i < K; i++) data[i * K + (K - 1 - i)] = 1;
      return { data, dims: [K, K] };
    });
    t = g.op('MatMul', [t, exchange]);
  }
  const flipped = g.op('Reshape', [t, g.ints([C, gm, ...win.kernel])]);
  return g.op(
    'Conv',
    [dy, flipped],
    windowAttrs({ ...win, begin, end }, { group: attr.int(group) }),
  );
}

const convRule: OpRule = {
  infer: (node, g) => {
    const { x, w, out } = convGeometry(g, node);
    return [{ elemType: typeOf(g, node, 0), dims: [x[0] as OnnxDim, w[0] as OnnxDim, ...out] }];
  },
  grad: ({ g, node, dOut, needs }) => {
    const dy = dOut[0] as string;
    const [x, w, b] = node.inputs as [string, string, string?];
    const { group, win } = convGeometry(g, node);
    const inSpatial = spatialOf(g, x, 'the Conv input');
    const outSpatial = spatialOf(g, dy, 'the Conv output gradient');
    const C = channelsOf(g, x, 'the Conv input');
    const M = channelsOf(g, dy, 'the Conv output gradient');
    const dx = needs(0)
      ? (inputGradAsConv(g, dy, w, C, M, group, win) ??
        g.op(
          'ConvTranspose',
          [dy, w],
          adjointAttrs(win, inSpatial, outSpatial, { group: attr.int(group) }),
        ))
      : undefined;
    const dw = needs(1) ? weightGrad(g, dy, M, x, C, group, win) : undefined;
    const db = b && needs(2) ? biasGrad(g, dy) : undefined;
    return [dx, dw, db];
  },
};

const convTransposeRule: OpRule = {
  infer: (node, g) => {
    const { x, w, group, out } = convTransposeGeometry(g, node);
    const m = w[1];
    const channels = typeof m === 'number' ? m * group : `${m}*${group}`;
    return [{ elemType: typeOf(g, node, 0), dims: [x[0] as OnnxDim, channels, ...out] }];
  },
  grad: ({ g, node, dOut, needs }) => {
    const dy = dOut[0] as string;
    const [x, w, b] = node.inputs as [string, string, string?];
    const { group, win, outputPadding } = convTransposeGeometry(g, node);
    spatialOf(g, x, 'the ConvTranspose input');
    if (outputPadding.some((p, i) => p >= (win.strides[i] as number)))
      throw new Error('ConvTranspose: output_padding ≥ stride has no gradient rule');
    const Cin = channelsOf(g, x, 'the ConvTranspose input');
    const Cout = channelsOf(g, dy, 'the ConvTranspose output gradient');
    // The window of this ConvTranspose, read as a Conv from its output back to its input.
    const dx = needs(0)
      ? g.op('Conv', [dy, w], windowAttrs(win, { group: attr.int(group) }))
      : undefined;
    const dw = needs(1) ? weightGrad(g, x, Cin, dy, Cout, group, win) : undefined;
    const db = b && needs(2) ? biasGrad(g, dy) : undefined;
    return [dx, dw, db];
  },
};

// ---------------------------------------------------------------------------
// Pools

function poolGeometry(g: G, node: GraphNode) {
  const x = dimsOf(g, node, 0);
  const kernel = intsAttr(node, 'kernel_shape');
  if (!kernel) throw new Error(`${node.opType} needs kernel_shape`);
  const { win, out } = resolveWindow(node, x.slice(2), kernel, intAttr(node, 'ceil_mode', 0) === 1);
  return { x, win, out };
}

const poolInfer: OpRule['infer'] = (node, g) => {
  const { x, out } = poolGeometry(g, node);
  return [{ elemType: typeOf(g, node, 0), dims: [x[0] as OnnxDim, x[1] as OnnxDim, ...out] }];
};

/**
 * Windows that tile the input: stride = kernel, no dilation, no pads, none
 * past the input's end (ceil_mode); a remainder no window reaches is allowed.
 */
function tiles(win: Window, inSpatial: readonly number[], outSpatial: readonly number[]): boolean {
  return win.kernel.every(
    (k, i) =>
      win.strides[i] === k &&
      win.dilations[i] === 1 &&
      win.begin[i] === 0 &&
      win.end[i] === 0 &&
      (outSpatial[i] as number) * k <= (inSpatial[i] as number),
  );
}

/**
 * For tiling windows: crop x [N, C, …in] to the windows' extent, spread a
 * pooled value back over its window (a nearest Resize by the kernel — the
 * one mode onnxruntime runs fast; broadcasting [N, C, o, 1, o, 1] against
 * [N, C, o, k, o, k] or an Expand is ~10× slower), and zero-pad a gradient
 * of the cropped extent back to the input's.
 */
function tiled(g: G, inSpatial: readonly number[], win: Window, outSpatial: readonly number[]) {
  const covered = outSpatial.map((o, i) => o * (win.kernel[i] as number));
  const r = inSpatial.length;
  const cropped = covered.some((c, i) => c !== inSpatial[i]);
  return {
    crop: (v: string) =>
      cropped
        ? g.op('Slice', [v, g.ints(range(r).map(() => 0)), g.ints(covered), g.ints(range(r, 2))])
        : v,
    spread: (pooled: string) => upsampleNearest(g, pooled, win.kernel),
    uncrop: (v: string) =>
      cropped
        ? g.op('Pad', [
            v,
            g.ints([
              0,
              0,
              ...covered.map(() => 0),
              0,
              0,
              ...inSpatial.map((d, i) => d - (covered[i] as number)),
            ]),
          ])
        : v,
  };
}

/** Row-major position scores K − k of each element inside its tile, as a constant [k1·o1, k2·o2, …]. */
function tileScores(g: G, win: Window, outSpatial: readonly number[]): string {
  const covered = outSpatial.map((o, i) => o * (win.kernel[i] as number));
  return cachedFilter(g, `maxpool_first:${covered}:${win.kernel}`, () => {
    const K = product(win.kernel);
    const data = new Float32Array(product(covered));
    data.forEach((_, flat) => {
      let rest = flat;
      let pos = 0;
      let stride = 1;
      for (let a = covered.length - 1; a >= 0; a--) {
        const k = win.kernel[a] as number;
        pos += ((rest % (covered[a] as number)) % k) * stride;
        stride *= k;
        rest = Math.floor(rest / (covered[a] as number));
      }
      data[flat] = K - pos;
    });
    return { data, dims: covered };
  });
}

/** The gradient of y = MaxPool(x) over the windows `win`: dy to the first maximum of each window. */
function maxPoolGrad(g: G, x: string, y: string, dy: string, win: Window): string[] {
  const inSpatial = spatialOf(g, x, 'the MaxPool input');
  const outSpatial = spatialOf(g, y, 'the MaxPool output');
  const C = channelsOf(g, x, 'the MaxPool input');
  const mask = (bool: string) => emit.mask(g, bool);
  if (product(win.kernel) === 1 && tiles(win, inSpatial, outSpatial)) return [dy];
  if (tiles(win, inSpatial, outSpatial)) {
    // Each element is in one window: score the maxima by their position in
    // the window (first = highest), pool the scores, keep the best one.
    const t = tiled(g, inSpatial, win, outSpatial);
    const isMax = mask(g.op('Equal', [t.crop(x), t.spread(y)]));
    const score = emit.mul(g, isMax, tileScores(g, win, outSpatial));
    const best = g.op('MaxPool', [score], windowAttrs(win));
    const first = mask(g.op('Equal', [score, t.spread(best)]));
    return [t.uncrop(emit.mul(g, first, t.spread(dy)))];
  }
  // Overlapping or padded windows: an element's position differs per window,
  // so compare within each window's own patch. Pads become −3.4e38 (never a maximum).
  const K = product(win.kernel);
  const L = product(outSpatial);
  const overhang = inSpatial.map((d, i) =>
    Math.max(
      0,
      ((outSpatial[i] as number) - 1) * (win.strides[i] as number) +
        extent(win, i) -
        (d + (win.begin[i] as number) + (win.end[i] as number)),
    ),
  );
  const padded =
    win.begin.some((p) => p > 0) || win.end.some((p) => p > 0) || overhang.some((p) => p > 0)
      ? g.op('Pad', [
          x,
          g.ints([0, 0, ...win.begin, 0, 0, ...win.end.map((e, i) => e + (overhang[i] as number))]),
          g.scalar(-3.4e38, 'pool_pad'),
        ])
      : x;
  const unpadded: Window = { ...win, begin: win.begin.map(() => 0), end: win.end.map(() => 0) };
  const patches = g.op('Reshape', [im2col(g, padded, C, unpadded), g.ints([0, C, K, L])]);
  const firstIdx = g.op('ArgMax', [patches], { axis: attr.int(2), keepdims: attr.int(1) });
  const first = mask(
    g.op('Equal', [firstIdx, g.int64Initializer(g.fresh('window_pos'), range(K), [K, 1])]),
  );
  const cols = emit.mul(g, first, g.op('Reshape', [dy, g.ints([0, C, 1, L])]));
  const colImage = g.op('Reshape', [cols, g.ints([0, C * K, ...outSpatial])]);
  return [
    g.op(
      'ConvTranspose',
      [colImage, oneHotFilters(g, C, win.kernel)],
      adjointAttrs(win, inSpatial, outSpatial, { group: attr.int(C) }),
    ),
  ];
}

const maxPoolRule: OpRule = {
  // The optional Indices output (int64, never differentiated): the gradient does without it.
  infer: (node, g) => {
    const [y] = poolInfer(node, g) as [ValueInfo];
    return node.outputs.map((_, i) => (i === 0 ? y : { ...y, elemType: DT.INT64 }));
  },
  grad: ({ g, node, dOut }) =>
    maxPoolGrad(
      g,
      node.inputs[0] as string,
      node.outputs[0] as string,
      dOut[0] as string,
      poolGeometry(g, node).win,
    ),
};

/** One window over the whole of each spatial axis. */
function globalWindow(g: G, x: string): Window {
  const spatial = spatialOf(g, x, 'the global pool input');
  return {
    kernel: spatial,
    strides: spatial,
    dilations: spatial.map(() => 1),
    begin: spatial.map(() => 0),
    end: spatial.map(() => 0),
  };
}

const globalPoolInfer: OpRule['infer'] = (node, g) => {
  const x = dimsOf(g, node, 0);
  return [
    {
      elemType: typeOf(g, node, 0),
      dims: [x[0] as OnnxDim, x[1] as OnnxDim, ...x.slice(2).map(() => 1)],
    },
  ];
};

const globalMaxPoolRule: OpRule = {
  infer: globalPoolInfer,
  grad: ({ g, node, dOut }) => {
    const x = node.inputs[0] as string;
    return maxPoolGrad(g, x, node.outputs[0] as string, dOut[0] as string, globalWindow(g, x));
  },
};

/** 1 / (elements counted in each window) as a constant [1, 1, …out] (a scalar when every window counts K). */
function windowDivisor(
  g: G,
  win: Window,
  inSpatial: readonly number[],
  outSpatial: readonly number[],
  includePad: boolean,
): string {
  const counts = outSpatial.map((o, i) =>
    range(o).map((j) => {
      const start = j * (win.strides[i] as number) - (win.begin[i] as number);
      // count_include_pad counts the pads, never the overhang past them (PyTorch's rule).
      const lo = includePad ? -(win.begin[i] as number) : 0;
      const hi = (inSpatial[i] as number) + (includePad ? (win.end[i] as number) : 0);
      let n = 0;
      for (let t = 0; t < (win.kernel[i] as number); t++) {
        const p = start + t * (win.dilations[i] as number);
        if (p >= lo && p < hi) n++;
      }
      return n;
    }),
  );
  if (counts.every((axis, i) => axis.every((n) => n === win.kernel[i])))
    return g.scalar(1 / product(win.kernel), 'pool_count');
  const data = new Float32Array(product(outSpatial));
  data.forEach((_, flat) => {
    let rest = flat;
    let n = 1;
    for (let a = outSpatial.length - 1; a >= 0; a--) {
      n *= (counts[a] as number[])[rest % (outSpatial[a] as number)] as number;
      rest = Math.floor(rest / (outSpatial[a] as number));
    }
    data[flat] = 1 / n;
  });
  return g.initializer(g.fresh('pool_count'), data, [1, 1, ...outSpatial]);
}

const averagePoolRule: OpRule = {
  infer: poolInfer,
  grad: ({ g, node, dOut }) => {
    const dy = dOut[0] as string;
    const x = node.inputs[0] as string;
    const { win } = poolGeometry(g, node);
    const inSpatial = spatialOf(g, x, 'the AveragePool input');
    const outSpatial = spatialOf(g, dy, 'the AveragePool output gradient');
    const C = channelsOf(g, x, 'the AveragePool input');
    const includePad = intAttr(node, 'count_include_pad', 0) === 1;
    const scaled = emit.mul(g, dy, windowDivisor(g, win, inSpatial, outSpatial, includePad));
    if (tiles(win, inSpatial, outSpatial)) {
      const t = tiled(g, inSpatial, win, outSpatial);
      return [t.uncrop(t.spread(scaled))];
    }
    return [
      g.op(
        'ConvTranspose',
        [scaled, onesFilters(g, C, win.kernel)],
        adjointAttrs(win, inSpatial, outSpatial, { group: attr.int(C) }),
      ),
    ];
  },
};

const globalAveragePoolRule: OpRule = {
  infer: globalPoolInfer,
  grad: ({ g, node, dOut }) => {
    const dy = dOut[0] as string;
    const x = node.inputs[0] as string;
    const spatial = (g.dims(x) as Shape).slice(2);
    if (spatial.every((d) => typeof d === 'number')) {
      // [N, C, 1, 1] × a constant [H, W] of 1/(H·W): one multiply, no Expand.
      const size = product(spatial as number[]);
      const spread = cachedFilter(g, `gap_spread:${spatial}`, () => ({
        data: new Float32Array(size).fill(1 / size),
        dims: spatial as number[],
      }));
      return [emit.mul(g, dy, spread)];
    }
    const count = emit.div(
      g,
      g.op('Cast', [g.op('Size', [x])], { to: attr.int(DT.FLOAT) }),
      g.op('Cast', [g.op('Size', [dy])], { to: attr.int(DT.FLOAT) }),
    );
    const expanded = g.op('Expand', [emit.div(g, dy, count), g.op('Shape', [x])]);
    g.setDims(expanded, g.dims(x) as Shape);
    return [expanded];
  },
};

// ---------------------------------------------------------------------------
// Resize

/** Float constants emitted here (Resize scales), by graph: the builder tracks only int64 ones. */
const floatConstants = new WeakMap<G, Map<string, readonly number[]>>();

function floatConstant(g: G, name: string): readonly number[] | undefined {
  const mine = floatConstants.get(g)?.get(name);
  if (mine) return mine;
  const decode = (t: Parameters<typeof decodeTensor>[0]) => {
    const d = decodeTensor(t, `Resize input "${name}"`);
    return Array.from(d.data as ArrayLike<number>);
  };
  const constant = g.nodes.find((n) => n.opType === 'Constant' && n.outputs[0] === name);
  const value = constant?.attrs.value;
  if (value?.type === 'tensor') return decode(value.value);
  const init = g.toModel().graph?.initializer?.find((t) => t.name === name);
  return init ? decode(init) : undefined;
}

function floatInitializer(g: G, values: readonly number[], stem: string): string {
  const name = g.initializer(g.fresh(stem), values, [values.length]);
  let m = floatConstants.get(g);
  if (!m) {
    m = new Map();
    floatConstants.set(g, m);
  }
  m.set(name, [...values]);
  return name;
}

const NEAREST_FLOOR: Record<string, OnnxAttr> = {
  mode: attr.string('nearest'),
  coordinate_transformation_mode: attr.string('asymmetric'),
  nearest_mode: attr.string('floor'),
};

/** Repeat each element of the spatial axes of v [N, C, …] k times (the fast nearest Resize). */
function upsampleNearest(g: G, v: string, factors: readonly number[]): string {
  if (factors.every((f) => f === 1)) return v;
  const scales = floatInitializer(g, [1, 1, ...factors], 'upsample_scales');
  return g.op('Resize', [v, '', scales], NEAREST_FLOOR);
}

/** A Resize node's scale and sizes per axis (from constant scales or sizes). */
function resizeGeometry(g: G, node: GraphNode) {
  const x = dimsOf(g, node, 0);
  const sizesName = node.inputs[3];
  const scalesName = node.inputs[2];
  let scales: number[];
  let out: OnnxDim[];
  if (sizesName) {
    const sizes = constInput(g, node, 3);
    if (sizes.length !== x.length) throw new Error('Resize: sizes must give every axis');
    out = [...sizes];
    // onnxruntime's scale from sizes: out / in in float32 (unknown over a symbolic axis).
    scales = sizes.map((s, i) => {
      const d = x[i];
      return typeof d === 'number' ? Math.fround(s / d) : Number.NaN;
    });
  } else if (scalesName) {
    const v = floatConstant(g, scalesName);
    if (!v) throw new Error(`Resize: scales "${scalesName}" must be a constant`);
    if (v.length !== x.length) throw new Error('Resize: scales must give every axis');
    scales = v.map((s) => Math.fround(s));
    out = x.map((d, i) => {
      const s = scales[i] as number;
      if (s === 1) return d;
      return typeof d === 'number' ? Math.floor(Math.fround(s * d)) : `resize(${d})`;
    });
  } else throw new Error('Resize needs scales or sizes');
  return { x, scales, out };
}

/**
 * The interpolation matrix [out, in] of one resized axis, as onnxruntime
 * computes it (float32 coordinates): row o holds the weights of the input
 * elements output o reads.
 */
function resizeMatrix(
  node: GraphNode,
  inSize: number,
  outSize: number,
  scale: number,
): Float32Array {
  const f = Math.fround;
  const mode = stringAttr(node, 'mode', 'nearest');
  const transform = stringAttr(node, 'coordinate_transformation_mode', 'half_pixel');
  const nearest = stringAttr(node, 'nearest_mode', 'round_prefer_floor');
  const original = (o: number): number => {
    switch (transform) {
      case 'asymmetric':
        return f(o / scale);
      case 'pytorch_half_pixel':
        return outSize > 1 ? f(f(f(o + 0.5) / scale) - 0.5) : 0;
      case 'tf_half_pixel_for_nn':
        return f(f(o + 0.5) / scale);
      case 'align_corners':
        return outSize === 1 ? 0 : f(f(o * (inSize - 1)) / (outSize - 1));
      case 'half_pixel':
        return f(f(f(o + 0.5) / scale) - 0.5);
      default:
        throw new Error(
          `Resize: coordinate_transformation_mode "${transform}" has no gradient rule`,
        );
    }
  };
  const m = new Float32Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    const xo = original(o);
    if (mode === 'nearest') {
      let i: number;
      if (nearest === 'floor') i = Math.floor(xo);
      else if (nearest === 'ceil') i = Math.ceil(xo);
      else if (nearest === 'round_prefer_ceil') i = Math.round(xo);
      else
        i = xo === Math.trunc(xo) + 0.5 ? Math.floor(xo) : Math.sign(xo) * Math.round(Math.abs(xo));
      i = Math.max(0, Math.min(inSize - 1, i));
      m[o * inSize + i] = 1;
    } else if (mode === 'linear') {
      const xc = Math.max(0, Math.min(inSize - 1, xo));
      const i1 = Math.min(Math.trunc(xc), inSize - 1);
      const i2 = Math.min(i1 + 1, inSize - 1);
      if (i1 === i2) m[o * inSize + i1] = 1;
      else {
        m[o * inSize + i1] = f(Math.abs(xc - i2));
        m[o * inSize + i2] = f(Math.abs(xc - i1));
      }
    } else throw new Error(`Resize: mode "${mode}" has no gradient rule`);
  }
  return m;
}

const resizeRule: OpRule = {
  infer: (node, g) => [{ elemType: typeOf(g, node, 0), dims: resizeGeometry(g, node).out }],
  grad: ({ g, node, dOut }) => {
    const dy = dOut[0] as string;
    const { x, scales, out } = resizeGeometry(g, node);
    const resized = x.map((_, i) => i).filter((i) => x[i] !== out[i]);
    if (resized.length === 0) return [dy];
    const r = x.length;
    if (resized.some((i) => i < r - 2))
      throw new Error('Resize: only the last two axes may be resized for a gradient');
    const inSizes = resized.map((i) => x[i]);
    const outSizes = resized.map((i) => out[i]);
    if ([...inSizes, ...outSizes].some((d) => typeof d !== 'number'))
      throw new Error('Resize: a resized axis of symbolic size has no gradient rule');
    const integer = resized.every((i, k) => {
      const s = scales[i] as number;
      return Number.isInteger(s) && (outSizes[k] as number) === (inSizes[k] as number) * s;
    });
    const isNearestFloor =
      stringAttr(node, 'mode', 'nearest') === 'nearest' &&
      stringAttr(node, 'coordinate_transformation_mode', 'half_pixel') === 'asymmetric' &&
      stringAttr(node, 'nearest_mode', 'round_prefer_floor') === 'floor';
    if (isNearestFloor && integer && r >= 3 && resized.every((i) => i >= 2)) {
      // Each input element was repeated over a tile: its gradient is the tile's sum.
      const factors = x.slice(2).map((_, j) => scales[j + 2] as number);
      const pooled = g.op('AveragePool', [dy], {
        kernel_shape: attr.ints(factors),
        strides: attr.ints(factors),
      });
      return [emit.mul(g, pooled, g.scalar(product(factors), 'tile_size'))];
    }
    // Separable: Y = A_h · X · A_wᵀ on the last two axes, so dX = A_hᵀ · dY · A_w.
    let grad = dy;
    for (const i of [...resized].sort((a, b) => b - a)) {
      const n = x[i] as number;
      const m = out[i] as number;
      const a = resizeMatrix(node, n, m, scales[i] as number);
      if (i === r - 1) {
        grad = g.op('MatMul', [grad, g.initializer(g.fresh('resize_grad'), a, [m, n])]);
      } else {
        const t = new Float32Array(n * m);
        for (let o = 0; o < m; o++)
          for (let k = 0; k < n; k++) t[k * m + o] = a[o * n + k] as number;
        grad = g.op('MatMul', [g.initializer(g.fresh('resize_grad'), t, [n, m]), grad]);
      }
    }
    return [grad];
  },
};

// ---------------------------------------------------------------------------
// BatchNormalization

/** The axes BatchNormalization reduces over (all but channel axis 1) and a per-channel reshape target. */
function bnAxes(g: G, x: string) {
  const d = g.dims(x) as Shape;
  const c = d[1];
  if (typeof c !== 'number') throw new Error(`the channel count of "${x}" is unknown`);
  return {
    axes: range(d.length).filter((i) => i !== 1),
    perChannel: (v: string) => g.op('Reshape', [v, g.ints([c, ...d.slice(2).map(() => 1)])]),
    count: (): string => {
      const reduced = range(d.length)
        .filter((i) => i !== 1)
        .map((i) => d[i]);
      if (reduced.every((n) => typeof n === 'number'))
        return g.scalar(product(reduced as number[]), 'bn_count');
      return emit.div(
        g,
        g.op('Cast', [g.op('Size', [x])], { to: attr.int(DT.FLOAT) }),
        g.scalar(c, 'bn_channels'),
      );
    },
  };
}

const batchNormRule: OpRule = {
  infer: (node, g) => {
    const x = g.info(node.inputs[0] as string);
    const c = dimsOf(g, node, 0)[1] as OnnxDim;
    const stat: ValueInfo = { elemType: x.elemType, dims: [c] };
    return node.outputs.map((_, i) => (i === 0 ? { ...x } : { ...stat }));
  },
  grad: ({ g, node, dOut, needs }: GradContext) => {
    const [x, scale, , mean, variance] = node.inputs as [string, string, string, string, string];
    const eps = floatAttr(node, 'epsilon', 1e-5);
    const momentum = floatAttr(node, 'momentum', 0.9);
    const training = intAttr(node, 'training_mode', 0) === 1;
    const { axes, perChannel, count } = bnAxes(g, x);
    const reduceMean = (v: string) =>
      g.op('ReduceMean', [v], { axes: attr.ints(axes), keepdims: attr.int(1) });
    const sum = (v: string) => emit.reduceSum(g, v, axes, false);
    const dy = dOut[0];
    const grads: (string | undefined)[] = [undefined, undefined, undefined, undefined, undefined];
    if (!training) {
      // y = scale·(x − mean)/√(var + ε) + B with the given statistics.
      if (!dy) return grads;
      const inv = g.op('Reciprocal', [
        g.op('Sqrt', [emit.add(g, variance, g.scalar(eps, 'bn_eps'))]),
      ]);
      const xhat = emit.mul(g, emit.sub(g, x, perChannel(mean)), perChannel(inv));
      const dyXhat = needs(1) || needs(4) ? sum(emit.mul(g, dy, xhat)) : undefined;
      const k = emit.mul(g, scale, inv);
      if (needs(0)) grads[0] = emit.mul(g, dy, perChannel(k));
      if (needs(1)) grads[1] = dyXhat;
      if (needs(2)) grads[2] = sum(dy);
      if (needs(3)) grads[3] = emit.neg(g, emit.mul(g, sum(dy), k));
      if (needs(4))
        grads[4] = emit.mul(
          g,
          dyXhat as string,
          emit.mul(g, k, emit.mul(g, inv, g.scalar(-0.5, 'half'))),
        );
      return grads;
    }
    // Training mode: the batch statistics (biased variance), recomputed from primitive ops.
    const mu = reduceMean(x);
    const centered = emit.sub(g, x, mu);
    const batchVar = reduceMean(emit.mul(g, centered, centered));
    const inv = g.op('Reciprocal', [
      g.op('Sqrt', [emit.add(g, batchVar, g.scalar(eps, 'bn_eps'))]),
    ]);
    const xhat = emit.mul(g, centered, inv);
    const dx: string[] = [];
    if (dy) {
      if (needs(0)) {
        // dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) / √(var + ε), dx̂ = dy·scale
        const dxhat = emit.mul(g, dy, perChannel(scale));
        const inner = emit.sub(
          g,
          emit.sub(g, dxhat, reduceMean(dxhat)),
          emit.mul(g, xhat, reduceMean(emit.mul(g, dxhat, xhat))),
        );
        dx.push(emit.mul(g, inner, inv));
      }
      if (needs(1)) grads[1] = sum(emit.mul(g, dy, xhat));
      if (needs(2)) grads[2] = sum(dy);
    }
    // The running statistics, input·momentum + batch·(1 − momentum): rarely
    // differentiated (they are state), but exact when they are.
    const [dMean, dVar] = [dOut[1], dOut[2]];
    const keep = () => g.scalar(momentum, 'bn_momentum');
    const spreadOverX = (perChannelGrad: string) => {
      const e = g.op('Expand', [perChannel(perChannelGrad), g.op('Shape', [x])]);
      g.setDims(e, g.dims(x) as Shape);
      return e;
    };
    if (dMean) {
      if (needs(3)) grads[3] = emit.mul(g, dMean, keep());
      // ∂ mean / ∂x = 1/n
      if (needs(0))
        dx.push(
          spreadOverX(emit.div(g, emit.mul(g, dMean, g.scalar(1 - momentum, 'bn_take')), count())),
        );
    }
    if (dVar) {
      if (needs(4)) grads[4] = emit.mul(g, dVar, keep());
      // ∂ var / ∂x = 2 (x − μ) / n
      if (needs(0))
        dx.push(
          emit.mul(
            g,
            centered,
            perChannel(
              emit.div(g, emit.mul(g, dVar, g.scalar(2 * (1 - momentum), 'bn_take2')), count()),
            ),
          ),
        );
    }
    if (dx.length === 1) grads[0] = dx[0];
    else if (dx.length > 1) {
      grads[0] = g.op('Sum', dx);
      g.setDims(grads[0], g.dims(x) as Shape);
    }
    return grads;
  },
};

// ---------------------------------------------------------------------------
// ArgMax (for the MaxPool gradient; its output carries no gradient)

const argMaxRule: OpRule = {
  infer: (node, g) => {
    const x = dimsOf(g, node, 0);
    const axis = normAxis(intAttr(node, 'axis', 0), x.length);
    const keep = intAttr(node, 'keepdims', 1) === 1;
    const dims = x.flatMap((d, i) => (i !== axis ? [d] : keep ? [1] : []));
    return [{ elemType: DT.INT64, dims }];
  },
  nonDifferentiable: true,
};

export const nnRules: Record<string, OpRule> = {
  Conv: convRule,
  ConvTranspose: convTransposeRule,
  MaxPool: maxPoolRule,
  AveragePool: averagePoolRule,
  GlobalAveragePool: globalAveragePoolRule,
  GlobalMaxPool: globalMaxPoolRule,
  BatchNormalization: batchNormRule,
  Resize: resizeRule,
  ArgMax: argMaxRule,
};
