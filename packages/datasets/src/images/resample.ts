// Pixel geometry on HWC images held in typed arrays: crop with zero fill,
// horizontal flip, and an antialiased bilinear (triangle-filter) resize.
// Pure JS, so the numbers do not depend on the libvips build.

/** An image in HWC order; values on the 0–255 scale (float or uint8). */
export interface PixelImage {
  readonly data: Uint8Array | Uint8ClampedArray | Float32Array;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

/** A crop rectangle in pixels; may extend past the image (the outside reads as 0). */
export interface CropBox {
  readonly top: number;
  readonly left: number;
  readonly height: number;
  readonly width: number;
}

export function checkImage(image: PixelImage, context: string): void {
  const { height, width, channels, data } = image;
  for (const [k, v] of [
    ['height', height],
    ['width', width],
    ['channels', channels],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new Error(`${context}: image ${k} must be a positive integer, got ${v}`);
  }
  if (data.length !== height * width * channels) {
    throw new Error(
      `${context}: image data has ${data.length} values, expected ${height}×${width}×${channels} = ${height * width * channels}`,
    );
  }
}

/** The pixels of `box` (exact copies; outside the image: 0). */
export function crop(image: PixelImage, box: CropBox): Float32Array {
  const { height: H, width: W, channels: C, data } = image;
  const out = new Float32Array(box.height * box.width * C);
  for (let r = 0; r < box.height; r++) {
    const sr = box.top + r;
    if (sr < 0 || sr >= H) continue;
    for (let c = 0; c < box.width; c++) {
      const sc = box.left + c;
      if (sc < 0 || sc >= W) continue;
      const src = (sr * W + sc) * C;
      const dst = (r * box.width + c) * C;
      for (let k = 0; k < C; k++) out[dst + k] = data[src + k] as number;
    }
  }
  return out;
}

/** Columns in reverse order (exact copies). */
export function flipHorizontal(image: PixelImage): Float32Array {
  const { height: H, width: W, channels: C, data } = image;
  const out = new Float32Array(H * W * C);
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < W; c++) {
      const src = (r * W + c) * C;
      const dst = (r * W + (W - 1 - c)) * C;
      for (let k = 0; k < C; k++) out[dst + k] = data[src + k] as number;
    }
  }
  return out;
}

interface AxisTaps {
  readonly start: Int32Array;
  readonly count: Int32Array;
  /** `maxTaps` weights per output position, summing to 1. */
  readonly weights: Float64Array;
  readonly maxTaps: number;
}

// For output position o the source centre is from + (o + 0.5)·scale (pixel
// centres at k + 0.5). When shrinking, the triangle is widened by the scale
// factor so every source pixel contributes (antialiasing); taps are limited
// to [from, from + span), i.e. the crop, and renormalised at its edges.
function axisTaps(from: number, span: number, out: number): AxisTaps {
  const scale = span / out;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const maxTaps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(out);
  const count = new Int32Array(out);
  const weights = new Float64Array(out * maxTaps);
  for (let o = 0; o < out; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(Math.floor(centre - support), 0);
    const hi = Math.min(Math.ceil(centre + support), span);
    let total = 0;
    let n = 0;
    for (let k = lo; k < hi && n < maxTaps; k++, n++) {
      const t = Math.abs((k + 0.5 - centre) / filterScale);
      const w = t < 1 ? 1 - t : 0;
      weights[o * maxTaps + n] = w;
      total += w;
    }
    // A zero total cannot happen for span ≥ 1 (the nearest pixel is within 0.5·scale).
    for (let j = 0; j < n; j++)
      weights[o * maxTaps + j] = (weights[o * maxTaps + j] as number) / total;
    start[o] = from + lo;
    count[o] = n;
  }
  return { start, count, weights, maxTaps };
}

/**
 * Resample the region `box` (inside the image) to outHeight × outWidth with
 * a separable triangle filter (bilinear when enlarging, antialiased when
 * shrinking). Values are not rounded.
 */
export function resizeRegion(
  image: PixelImage,
  box: CropBox,
  outHeight: number,
  outWidth: number,
): Float32Array {
  const { width: W, channels: C, data } = image;
  const xs = axisTaps(box.left, box.width, outWidth);
  const ys = axisTaps(box.top, box.height, outHeight);
  // Horizontal pass over the box's rows, then vertical.
  const tmp = new Float32Array(box.height * outWidth * C);
  for (let r = 0; r < box.height; r++) {
    const rowBase = (box.top + r) * W;
    for (let o = 0; o < outWidth; o++) {
      const s = xs.start[o] as number;
      const n = xs.count[o] as number;
      const wBase = o * xs.maxTaps;
      const dst = (r * outWidth + o) * C;
      for (let k = 0; k < C; k++) {
        let acc = 0;
        for (let j = 0; j < n; j++)
          acc += (xs.weights[wBase + j] as number) * (data[(rowBase + s + j) * C + k] as number);
        tmp[dst + k] = acc;
      }
    }
  }
  const out = new Float32Array(outHeight * outWidth * C);
  const rowLen = outWidth * C;
  for (let o = 0; o < outHeight; o++) {
    const s = (ys.start[o] as number) - box.top;
    const n = ys.count[o] as number;
    const wBase = o * ys.maxTaps;
    const dst = o * rowLen;
    for (let j = 0; j < n; j++) {
      const w = ys.weights[wBase + j] as number;
      const src = (s + j) * rowLen;
      for (let i = 0; i < rowLen; i++)
        out[dst + i] = (out[dst + i] as number) + w * (tmp[src + i] as number);
    }
  }
  return out;
}
