/**
 * Training kernels missing from @tensorflow/tfjs-backend-wasm 4.22.0.
 *
 * The wasm backend ships forward convolutions (XNNPACK) and
 * Conv2DBackpropInput, but not the kernels that `tf.grad` needs for a conv's
 * filter, for depthwise convs, or for `tf.gather` (whose gradient is an
 * UnsortedSegmentSum). Without them, training on 'wasm' throws
 * "Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'".
 *
 * Each kernel here is composed of kernels that wasm does have, called directly
 * through their registered `kernelFunc` with the wasm backend (the same way
 * backends compose kernels internally). Nothing goes through the engine, so
 * the intermediates are invisible to the tape, to `tf.tidy` and to
 * `tf.memory()`; they are released with `backend.disposeData` in a `finally`.
 * Only the returned TensorInfo (always a fresh data id owned by this kernel)
 * is handed to the engine.
 *
 * Separately, useFastWasmConv2DBackpropInput() optionally replaces wasm's own
 * (slow, non-XNNPACK) Conv2DBackpropInput, the input gradient of a conv.
 *
 * Layout conventions follow tfjs-core: x / dy are NHWC unless
 * `dataFormat: 'NCHW'` (Conv2DBackpropFilter only); filters are
 * [filterHeight, filterWidth, inChannels, outChannels] (depthwise:
 * [fh, fw, inChannels, channelMultiplier], output channel = c * mult + q).
 */

import type {
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropInputAttrs,
  DataType,
  DepthwiseConv2dNativeBackpropFilterAttrs,
  DepthwiseConv2dNativeBackpropInputAttrs,
  KernelBackend,
  KernelConfig,
  KernelFunc,
  NamedAttrMap,
  NamedTensorInfoMap,
  TensorInfo,
  TypedArray,
  UnsortedSegmentSumAttrs,
} from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';

const BACKEND = 'wasm';

/** The parts of tfjs-backend-wasm's BackendWasm that these kernels use. */
interface WasmBackendLike extends KernelBackend {
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): TypedArray;
  readSync(dataId: object): tf.BackendValues;
  disposeData(dataId: object, force?: boolean): boolean;
}

type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];

/**
 * Runs kernels registered for 'wasm' directly and tracks their outputs so that
 * `release(result)` frees every intermediate except the result.
 */
class WasmScope {
  private readonly owned: TensorInfo[] = [];

  constructor(readonly backend: WasmBackendLike) {}

  run(kernelName: string, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
    const kernel = tf.getKernel(kernelName, BACKEND);
    if (kernel == null) {
      throw new Error(
        `wasm-gradient-kernels: kernel '${kernelName}' is not registered for '${BACKEND}'`,
      );
    }
    const out = kernel.kernelFunc({ inputs, attrs, backend: this.backend });
    if (Array.isArray(out)) {
      for (const o of out) this.owned.push(o);
      throw new Error(`wasm-gradient-kernels: kernel '${kernelName}' returned several outputs`);
    }
    this.owned.push(out);
    return out;
  }

  /** Allocates an uninitialised wasm tensor owned by this scope. */
  alloc(shape: number[], dtype: DataType): TensorInfo {
    const out = this.backend.makeOutput(shape, dtype);
    this.owned.push(out);
    return out;
  }

  /** Frees all intermediates except `result` (which may or may not be owned). */
  release(result?: TensorInfo): void {
    for (const info of this.owned) {
      if (result != null && info.dataId === result.dataId) continue;
      this.backend.disposeData(info.dataId);
    }
    this.owned.length = 0;
  }
}

/** A view of `info` with another shape (same data id, no copy, no refcount). */
function view(info: TensorInfo, shape: number[]): TensorInfo {
  if (tf.util.sizeFromShape(shape) !== tf.util.sizeFromShape(info.shape)) {
    throw new Error(`wasm-gradient-kernels: cannot view [${info.shape}] as [${shape}]`);
  }
  return { dataId: info.dataId, shape, dtype: info.dtype };
}

function zerosOutput(backend: WasmBackendLike, shape: number[], dtype: DataType): TensorInfo {
  const out = backend.makeOutput(shape, dtype);
  backend.typedArrayFromHeap(out).fill(0);
  return out;
}

/** Slices rows [r0, r0 + h) and cols [c0, c0 + w) of the spatial dims 1 and 2 of a rank-4 tensor. */
function cropSpatial(
  s: WasmScope,
  x: TensorInfo,
  r0: number,
  h: number,
  c0: number,
  w: number,
): TensorInfo {
  const [n, rows, cols, ch] = x.shape as [number, number, number, number];
  if (r0 === 0 && c0 === 0 && rows === h && cols === w) return x;
  return s.run(tf.Slice, { x }, { begin: [0, r0, c0, 0], size: [n, h, w, ch] });
}

/**
 * Padding (after the input) that makes a stride-1 correlation with a window of
 * `window` taps spaced `dilation` apart, over `inLen` (+ `before` padding)
 * produce at least `want` outputs. Returns the (non-negative) pad and the
 * number of outputs actually produced; extra outputs are at the end.
 */
function padAfterFor(
  inLen: number,
  before: number,
  window: number,
  dilation: number,
  want: number,
): [number, number] {
  const effWindow = (window - 1) * dilation + 1;
  const needed = want - 1 + effWindow - inLen - before;
  const after = Math.max(0, needed);
  return [after, inLen + before + after - effWindow + 1];
}

/**
 * dy [b, oh, ow, ch] spread out by the stride: [b, oh*sh, ow*sw, ch] with dy
 * at rows/cols that are multiples of the stride and zeros elsewhere (zeros are
 * inserted by a PadV2 on a rank-6 view). Returns dy itself for stride 1.
 */
function spreadByStride(s: WasmScope, dy: TensorInfo, sh: number, sw: number): TensorInfo {
  if (sh === 1 && sw === 1) return dy;
  const [b, oh, ow, ch] = dy.shape as [number, number, number, number];
  const padded = s.run(
    tf.PadV2,
    { x: view(dy, [b, oh, 1, ow, 1, ch]) },
    {
      paddings: [
        [0, 0],
        [0, 0],
        [0, sh - 1],
        [0, 0],
        [0, sw - 1],
        [0, 0],
      ],
      constantValue: 0,
    },
  );
  return view(padded, [b, oh * sh, ow * sw, ch]);
}

/**
 * Padding for the stride-1 correlation of a spread dy (see spreadByStride)
 * with the flipped filter that yields the input gradient of a conv described
 * by `info`:
 *
 *   dx[ih] = sum_k spread[ih + pt - k*d] * w[k] = sum_k' spread[ih - ((K-1)*d - pt) + k'*d] * flip(w)[k']
 *
 * so the padding before is (K-1)*d - pt. When that is negative (explicit
 * padding larger than the dilated kernel), pad 0 and skip that many leading
 * rows of the result instead. The padding after is whatever makes the result
 * cover skipRows + inHeight rows; extra rows at the end are cropped.
 */
function transposedConvPadding(
  info: tf.backend_util.Conv2DInfo,
  spread: TensorInfo,
): { pad: ExplicitPadding; skipRows: number; skipCols: number } {
  const { filterHeight, filterWidth, dilationHeight: dh, dilationWidth: dw } = info;
  const padTopWanted = (filterHeight - 1) * dh - info.padInfo.top;
  const padLeftWanted = (filterWidth - 1) * dw - info.padInfo.left;
  const padTop = Math.max(0, padTopWanted);
  const padLeft = Math.max(0, padLeftWanted);
  const skipRows = padTop - padTopWanted;
  const skipCols = padLeft - padLeftWanted;
  const [padBottom] = padAfterFor(
    spread.shape[1] ?? 0,
    padTop,
    filterHeight,
    dh,
    skipRows + info.inHeight,
  );
  const [padRight] = padAfterFor(
    spread.shape[2] ?? 0,
    padLeft,
    filterWidth,
    dw,
    skipCols + info.inWidth,
  );
  return {
    pad: [
      [0, 0],
      [padTop, padBottom],
      [padLeft, padRight],
      [0, 0],
    ],
    skipRows,
    skipCols,
  };
}

// ---------------------------------------------------------------------------
// Conv2DBackpropFilter
//
// Needed by the gradient of tf.conv2d (and of Conv2DBackpropInput) w.r.t. the
// filter, i.e. by every trainable conv layer. Must be fast: it costs as much
// as the forward conv.
//
//   dW[kh, kw, ci, co] = sum_{b, oh, ow} x[b, oh*sh + kh - pt, ow*sw + kw - pl, ci] * dy[b, oh, ow, co]
//
// This is itself a convolution, run on the XNNPACK-backed wasm Conv2D:
//   input  X' = x  transposed to [ci, H, W, b]        (batch <- ci, channels <- b)
//   filter F' = dy transposed to [oh, ow, b, co]
//   stride 1 (the forward dilation), dilation (sh, sw) (the forward stride),
//   explicit padding (pt, pl) before and whatever makes the output >= KH x KW
//   after; output [ci, KH, KW, co] -> transpose to [KH, KW, ci, co].
// ---------------------------------------------------------------------------
function conv2DBackpropFilter(args: {
  inputs: NamedTensorInfoMap;
  backend: unknown;
  attrs?: NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } =
    args.attrs as unknown as Conv2DBackpropFilterAttrs;
  const fmt = tf.backend_util.convertConv2DDataFormat(dataFormat);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    fmt,
  );
  const channelsLast = info.dataFormat === 'channelsLast';
  const {
    batchSize,
    inHeight,
    inWidth,
    inChannels,
    outHeight,
    outWidth,
    outChannels,
    filterHeight,
    filterWidth,
  } = info;
  const expectedDy = channelsLast
    ? [batchSize, outHeight, outWidth, outChannels]
    : [batchSize, outChannels, outHeight, outWidth];
  if (!tf.util.arraysEqual(dy.shape, expectedDy)) {
    throw new Error(
      `Conv2DBackpropFilter (wasm): dy has shape [${dy.shape}], expected [${expectedDy}]`,
    );
  }
  const outShape = [filterHeight, filterWidth, inChannels, outChannels];
  if (tf.util.sizeFromShape(x.shape) === 0 || tf.util.sizeFromShape(dy.shape) === 0) {
    return zerosOutput(backend, outShape, 'float32');
  }

  const s = new WasmScope(backend);
  try {
    // [ci, H, W, b] and [oh, ow, b, co]
    const xT = s.run(tf.Transpose, { x }, { perm: channelsLast ? [3, 1, 2, 0] : [1, 2, 3, 0] });
    const dyT = s.run(
      tf.Transpose,
      { x: dy },
      { perm: channelsLast ? [1, 2, 0, 3] : [2, 3, 0, 1] },
    );
    const { top, left } = info.padInfo;
    const [bottom, rowsOut] = padAfterFor(
      inHeight,
      top,
      outHeight,
      info.strideHeight,
      filterHeight,
    );
    const [right, colsOut] = padAfterFor(inWidth, left, outWidth, info.strideWidth, filterWidth);
    const conv = s.run(
      tf.Conv2D,
      { x: xT, filter: dyT },
      {
        strides: [1, 1],
        pad: [
          [0, 0],
          [top, bottom],
          [left, right],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [info.strideHeight, info.strideWidth],
      },
    );
    if (conv.shape[1] !== rowsOut || conv.shape[2] !== colsOut) {
      throw new Error(`Conv2DBackpropFilter (wasm): internal shape mismatch [${conv.shape}]`);
    }
    const cropped = cropSpatial(s, conv, 0, filterHeight, 0, filterWidth);
    const result = s.run(tf.Transpose, { x: cropped }, { perm: [1, 2, 0, 3] });
    s.release(result);
    return result;
  } catch (err) {
    s.release();
    throw err;
  }
}

// ---------------------------------------------------------------------------
// DepthwiseConv2dNativeBackpropFilter
//
// Needed by the gradient of tf.depthwiseConv2d / separableConv2d w.r.t. the
// depthwise filter.
//
//   dW[kh, kw, c, q] = sum_{b, oh, ow} x[b, oh*sh + kh*dh - pt, ow*sw + kw*dw - pl, c] * dy[b, oh, ow, c*m + q]
//
// Folding the batch into the channels turns it into one depthwise conv on the
// XNNPACK-backed wasm DepthwiseConv2dNative plus a sum over the batch:
//   input  [1, H, W, b*C]          (x transposed to [H, W, b, C])
//   filter [oh, ow, b*C, m]        (dy transposed to [oh, ow, b, C*m])
//   stride (dh, dw), dilation (sh, sw), explicit padding as above
//   output [1, KH, KW, b*C*m] -> sum over b -> [KH, KW, C, m].
// Its oh x ow kernel keeps XNNPACK off its fastest path (about 10x the forward
// conv's time for m = 1, e.g. 50 ms vs 4 ms at batch 32, 28x28x32, 3x3); a
// direct JS loop measured only 1.3-1.7x faster for m = 1, 3x3 and slower for
// 5x5 kernels or m > 1, so there is a single implementation.
// ---------------------------------------------------------------------------
function depthwiseConv2dNativeBackpropFilter(args: {
  inputs: NamedTensorInfoMap;
  backend: unknown;
  attrs?: NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const { strides, dilations, pad, dimRoundingMode, filterShape } =
    args.attrs as unknown as DepthwiseConv2dNativeBackpropFilterAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    dilations == null ? 1 : dilations,
    pad,
    dimRoundingMode,
    true,
  );
  const {
    batchSize,
    inHeight,
    inWidth,
    inChannels,
    outHeight,
    outWidth,
    outChannels,
    filterHeight,
    filterWidth,
  } = info;
  const mult = outChannels / inChannels;
  const expectedDy = [batchSize, outHeight, outWidth, outChannels];
  if (!tf.util.arraysEqual(dy.shape, expectedDy)) {
    throw new Error(
      `DepthwiseConv2dNativeBackpropFilter (wasm): dy has shape [${dy.shape}], expected [${expectedDy}]`,
    );
  }
  const outShape = [filterHeight, filterWidth, inChannels, mult];
  if (tf.util.sizeFromShape(x.shape) === 0 || tf.util.sizeFromShape(dy.shape) === 0) {
    return zerosOutput(backend, outShape, 'float32');
  }

  const s = new WasmScope(backend);
  try {
    const xT = s.run(tf.Transpose, { x }, { perm: [1, 2, 0, 3] }); // [H, W, b, C]
    const dyT = s.run(tf.Transpose, { x: dy }, { perm: [1, 2, 0, 3] }); // [oh, ow, b, C*m]
    const { top, left } = info.padInfo;
    const { dilationHeight: dh, dilationWidth: dw, strideHeight: sh, strideWidth: sw } = info;
    // Outputs of the folded conv are taken every `dh` rows: solve for the pad
    // after with a window of `outHeight` taps `sh` apart and output stride `dh`.
    const rowsNeeded = (filterHeight - 1) * dh + 1;
    const colsNeeded = (filterWidth - 1) * dw + 1;
    const [bottom] = padAfterFor(inHeight, top, outHeight, sh, rowsNeeded);
    const [right] = padAfterFor(inWidth, left, outWidth, sw, colsNeeded);
    const conv = s.run(
      tf.DepthwiseConv2dNative,
      {
        x: view(xT, [1, inHeight, inWidth, batchSize * inChannels]),
        filter: view(dyT, [outHeight, outWidth, batchSize * inChannels, mult]),
      },
      {
        strides: [dh, dw],
        pad: [
          [0, 0],
          [top, bottom],
          [left, right],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [sh, sw],
      },
    );
    // conv: [1, rows >= KH, cols >= KW, b*C*m]
    const rows = conv.shape[1] ?? 0;
    const cols = conv.shape[2] ?? 0;
    if (rows < filterHeight || cols < filterWidth) {
      throw new Error(
        `DepthwiseConv2dNativeBackpropFilter (wasm): internal shape mismatch [${conv.shape}]`,
      );
    }
    let summed: TensorInfo;
    if (batchSize > 1) {
      summed = s.run(
        tf.Sum,
        { x: view(conv, [rows, cols, batchSize, outChannels]) },
        { axis: [2], keepDims: false },
      );
    } else {
      summed = view(conv, [rows, cols, outChannels]);
    }
    const s4 = view(summed, [1, rows, cols, outChannels]);
    const cropped = cropSpatial(s, s4, 0, filterHeight, 0, filterWidth);
    const result = view(cropped, outShape);
    s.release(result);
    return result;
  } catch (err) {
    s.release();
    throw err;
  }
}

// ---------------------------------------------------------------------------
// DepthwiseConv2dNativeBackpropInput
//
// Needed by the gradient of tf.depthwiseConv2d / separableConv2d w.r.t. its
// input (i.e. to backpropagate through a depthwise layer into earlier layers).
//
//   dx[b, ih, iw, c] = sum_{kh, kw, q, oh, ow : oh*sh + kh*dh - pt = ih, ...} dy[b, oh, ow, c*m + q] * w[kh, kw, c, q]
//
// A transposed depthwise conv, run on the XNNPACK-backed wasm
// DepthwiseConv2dNative: dy is spread out by the stride (spreadByStride), the
// filter is flipped (Reverse) and viewed as [KH, KW, C*m, 1], then a stride-1
// depthwise conv with dilation (dh, dw) and the padding of
// transposedConvPadding gives [b, H, W, C*m]; for m > 1 the multiplier axis
// is summed.
// ---------------------------------------------------------------------------
function depthwiseConv2dNativeBackpropInput(args: {
  inputs: NamedTensorInfoMap;
  backend: unknown;
  attrs?: NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const { strides, dilations, pad, dimRoundingMode, inputShape } =
    args.attrs as unknown as DepthwiseConv2dNativeBackpropInputAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    strides,
    dilations == null ? 1 : dilations,
    pad,
    dimRoundingMode,
    true,
  );
  const {
    batchSize,
    inHeight,
    inWidth,
    inChannels,
    outHeight,
    outWidth,
    outChannels,
    filterHeight,
    filterWidth,
  } = info;
  const mult = outChannels / inChannels;
  const expectedDy = [batchSize, outHeight, outWidth, outChannels];
  if (!tf.util.arraysEqual(dy.shape, expectedDy)) {
    throw new Error(
      `DepthwiseConv2dNativeBackpropInput (wasm): dy has shape [${dy.shape}], expected [${expectedDy}]`,
    );
  }
  const outShape = [batchSize, inHeight, inWidth, inChannels];
  if (tf.util.sizeFromShape(outShape) === 0) return backend.makeOutput(outShape, 'float32');
  if (tf.util.sizeFromShape(dy.shape) === 0 || tf.util.sizeFromShape(filter.shape) === 0) {
    return zerosOutput(backend, outShape, 'float32');
  }

  const { dilationHeight: dh, dilationWidth: dw } = info;
  const s = new WasmScope(backend);
  try {
    const spread = spreadByStride(s, dy, info.strideHeight, info.strideWidth);
    // Flipped filter, one output per (c, q) channel.
    const flipped = s.run(tf.Reverse, { x: filter }, { dims: [0, 1] });
    const flippedView = view(flipped, [filterHeight, filterWidth, outChannels, 1]);
    const t = transposedConvPadding(info, spread);
    const conv = s.run(
      tf.DepthwiseConv2dNative,
      { x: spread, filter: flippedView },
      { strides: [1, 1], pad: t.pad, dataFormat: 'NHWC', dilations: [dh, dw] },
    );
    const rows = conv.shape[1] ?? 0;
    const cols = conv.shape[2] ?? 0;
    if (rows < t.skipRows + inHeight || cols < t.skipCols + inWidth) {
      throw new Error(
        `DepthwiseConv2dNativeBackpropInput (wasm): internal shape mismatch [${conv.shape}]`,
      );
    }

    // Sum the channel multiplier, then crop to the input's extent.
    let summed = conv;
    if (mult > 1) {
      summed = s.run(
        tf.Sum,
        { x: view(conv, [batchSize, rows, cols, inChannels, mult]) },
        { axis: [4], keepDims: false },
      );
    }
    const result = cropSpatial(s, summed, t.skipRows, inHeight, t.skipCols, inWidth);
    s.release(result);
    return result;
  } catch (err) {
    s.release();
    throw err;
  }
}

// ---------------------------------------------------------------------------
// UnsortedSegmentSum
//
// Needed by the gradient of tf.gather (used by embeddings, and by
// gather-based indexing in losses/metrics), and by tf.unsortedSegmentSum.
//
//   out[s, ...] = sum_{i : segmentIds[i] == s} x[i, ...]     for 0 <= s < numSegments
//
// Runs on the wasm ScatterNd kernel, which sums duplicate indices. Ids outside
// [0, numSegments) are dropped (as on 'cpu'): they are redirected to an extra
// scratch segment that is then cut off, so ScatterNd never sees an index out
// of range. Output dtype is x's dtype.
// ---------------------------------------------------------------------------
function unsortedSegmentSum(args: {
  inputs: NamedTensorInfoMap;
  backend: unknown;
  attrs?: NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { x, segmentIds } = args.inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const { numSegments } = args.attrs as unknown as UnsortedSegmentSumAttrs;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum (wasm): unsupported dtype ${x.dtype}`);
  }
  const idsRank = segmentIds.shape.length;
  if (!tf.util.arraysEqual(segmentIds.shape, x.shape.slice(0, idsRank))) {
    throw new Error(
      `UnsortedSegmentSum (wasm): segmentIds shape [${segmentIds.shape}] must be a prefix of x shape [${x.shape}]`,
    );
  }
  const innerShape = x.shape.slice(idsRank);
  const outShape = [numSegments, ...innerShape];
  const numIds = tf.util.sizeFromShape(segmentIds.shape);
  const innerSize = tf.util.sizeFromShape(innerShape);
  if (tf.util.sizeFromShape(outShape) === 0) return backend.makeOutput(outShape, x.dtype);
  if (numIds === 0 || innerSize === 0) return zerosOutput(backend, outShape, x.dtype);

  const ids = backend.readSync(segmentIds.dataId) as TypedArray;
  let allValid = true;
  for (let i = 0; i < numIds; i++) {
    const id = ids[i] as number;
    if (!(id >= 0 && id < numSegments)) {
      allValid = false;
      break;
    }
  }

  const s = new WasmScope(backend);
  try {
    let indices: TensorInfo;
    let segments = numSegments;
    if (allValid && segmentIds.dtype === 'int32') {
      indices = view(segmentIds, [numIds, 1]);
    } else {
      segments = allValid ? numSegments : numSegments + 1;
      indices = s.alloc([numIds, 1], 'int32');
      const idx = backend.typedArrayFromHeap(indices);
      for (let i = 0; i < numIds; i++) {
        const id = Math.trunc(ids[i] as number);
        idx[i] = id >= 0 && id < numSegments ? id : numSegments;
      }
    }
    const scattered = s.run(
      tf.ScatterNd,
      { indices, updates: view(x, [numIds, ...innerShape]) },
      { shape: [segments, ...innerShape] },
    );
    let result = scattered;
    if (segments !== numSegments) {
      result = s.run(tf.Slice, { x: scattered }, { begin: outShape.map(() => 0), size: outShape });
    }
    s.release(result);
    return result;
  } catch (err) {
    s.release();
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Conv2DBackpropInput (optional replacement, see useFastWasmConv2DBackpropInput)
//
// wasm does have this kernel, but as a plain C++ loop that is ~9x slower than
// the XNNPACK forward Conv2D (about 105 ms vs 12 ms for a batch of 32,
// 28x28x16 -> 3x3x16x32), which makes it the bulk of a conv layer's backward
// pass. This version is a transposed conv on the XNNPACK-backed wasm Conv2D:
// dy spread out by the stride, filter flipped and transposed to
// [KH, KW, outChannels, inChannels], stride-1 conv with the padding of
// transposedConvPadding, crop.
// ---------------------------------------------------------------------------
function conv2DBackpropInputViaConv2D(args: {
  inputs: NamedTensorInfoMap;
  backend: unknown;
  attrs?: NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as WasmBackendLike;
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } =
    args.attrs as unknown as Conv2DBackpropInputAttrs;
  const fmt = tf.backend_util.convertConv2DDataFormat(dataFormat);
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    fmt,
  );
  const channelsLast = info.dataFormat === 'channelsLast';
  const { batchSize, inHeight, inWidth, outHeight, outWidth, outChannels } = info;
  const expectedDy = channelsLast
    ? [batchSize, outHeight, outWidth, outChannels]
    : [batchSize, outChannels, outHeight, outWidth];
  if (!tf.util.arraysEqual(dy.shape, expectedDy)) {
    throw new Error(
      `Conv2DBackpropInput (wasm): dy has shape [${dy.shape}], expected [${expectedDy}]`,
    );
  }
  if (tf.util.sizeFromShape(inputShape) === 0)
    return backend.makeOutput([...inputShape], 'float32');
  if (tf.util.sizeFromShape(dy.shape) === 0 || tf.util.sizeFromShape(filter.shape) === 0) {
    return zerosOutput(backend, [...inputShape], 'float32');
  }

  const s = new WasmScope(backend);
  try {
    const dyNhwc = channelsLast ? dy : s.run(tf.Transpose, { x: dy }, { perm: [0, 2, 3, 1] });
    const spread = spreadByStride(s, dyNhwc, info.strideHeight, info.strideWidth);
    const flipped = s.run(tf.Reverse, { x: filter }, { dims: [0, 1] });
    const flippedT = s.run(tf.Transpose, { x: flipped }, { perm: [0, 1, 3, 2] });
    const t = transposedConvPadding(info, spread);
    const conv = s.run(
      tf.Conv2D,
      { x: spread, filter: flippedT },
      { strides: [1, 1], pad: t.pad, dataFormat: 'NHWC', dilations: [1, 1] },
    );
    const rows = conv.shape[1] ?? 0;
    const cols = conv.shape[2] ?? 0;
    if (rows < t.skipRows + inHeight || cols < t.skipCols + inWidth) {
      throw new Error(`Conv2DBackpropInput (wasm): internal shape mismatch [${conv.shape}]`);
    }
    const cropped = cropSpatial(s, conv, t.skipRows, inHeight, t.skipCols, inWidth);
    const result = channelsLast
      ? cropped
      : s.run(tf.Transpose, { x: cropped }, { perm: [0, 3, 1, 2] });
    s.release(result);
    return result;
  } catch (err) {
    s.release();
    throw err;
  }
}

const kernelConfigs: KernelConfig[] = [
  {
    kernelName: tf.Conv2DBackpropFilter,
    backendName: BACKEND,
    kernelFunc: conv2DBackpropFilter as KernelFunc,
  },
  {
    kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
    backendName: BACKEND,
    kernelFunc: depthwiseConv2dNativeBackpropFilter as KernelFunc,
  },
  {
    kernelName: tf.DepthwiseConv2dNativeBackpropInput,
    backendName: BACKEND,
    kernelFunc: depthwiseConv2dNativeBackpropInput as KernelFunc,
  },
  {
    kernelName: tf.UnsortedSegmentSum,
    backendName: BACKEND,
    kernelFunc: unsortedSegmentSum as KernelFunc,
  },
];

/** Names of the kernels this module provides for 'wasm'. */
export const WASM_GRADIENT_KERNEL_NAMES: readonly string[] = kernelConfigs.map((c) => c.kernelName);

/**
 * Registers the missing training kernels for the 'wasm' backend. Idempotent;
 * a kernel already registered for 'wasm' (e.g. by a future tfjs release) is
 * left alone.
 */
export function registerWasmGradientKernels(): void {
  for (const config of kernelConfigs) {
    if (tf.getKernel(config.kernelName, BACKEND) == null) tf.registerKernel(config);
  }
}

let stockConv2DBackpropInput: KernelConfig | undefined;

/**
 * Swaps wasm's stock Conv2DBackpropInput (a C++ loop) for the
 * XNNPACK-backed transposed conv above (`true`), or puts the stock kernel
 * back (`false`). Idempotent. Kept apart from registerWasmGradientKernels
 * because it replaces a kernel tfjs-backend-wasm already provides;
 * `initBackend` turns it on for wasm.
 */
export function useFastWasmConv2DBackpropInput(enabled = true): void {
  const current = tf.getKernel(tf.Conv2DBackpropInput, BACKEND);
  const isFast = current?.kernelFunc === (conv2DBackpropInputViaConv2D as KernelFunc);
  if (enabled === isFast) return;
  if (enabled) {
    if (current != null) {
      stockConv2DBackpropInput = current;
      tf.unregisterKernel(tf.Conv2DBackpropInput, BACKEND);
    }
    tf.registerKernel({
      kernelName: tf.Conv2DBackpropInput,
      backendName: BACKEND,
      kernelFunc: conv2DBackpropInputViaConv2D as KernelFunc,
    });
  } else {
    tf.unregisterKernel(tf.Conv2DBackpropInput, BACKEND);
    const stock = stockConv2DBackpropInput;
    if (stock != null) {
      tf.registerKernel(stock);
      // If the wasm backend was initialised while the stock kernel was
      // unregistered, its setup (binding the C++ function) never ran.
      const wasm = tf.findBackend(BACKEND);
      if (wasm != null) stock.setupFunc?.(wasm);
    }
  }
}
