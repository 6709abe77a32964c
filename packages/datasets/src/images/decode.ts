import sharp from 'sharp';
import type { SizeSpec } from './augment.js';

/**
 * - 'stretch': exactly the given size, aspect ratio not kept.
 * - 'shorter-side': scaled (aspect kept) so that the shorter side matches;
 *   with `size: [h, w]` the image is scaled to cover h × w and the centre
 *   h × w is kept.
 */
export type DecodeResize = 'stretch' | 'shorter-side';

/**
 * What happens to an alpha channel:
 * - 'drop' (default): the alpha channel is discarded and the colour values
 *   kept as stored, as PIL's `convert('RGB')` (torchvision's loader) does;
 * - 'black': composited onto black, v · alpha / 255.
 */
export type AlphaMode = 'drop' | 'black';

export interface DecodeImageOptions {
  /**
   * Resize while decoding (libvips' lanczos3, fast for large JPEGs):
   * `[h, w]` or `n` (see `resize`). Default: the stored size.
   */
  readonly size?: SizeSpec;
  /** Default 'shorter-side' for `size: n`, 'stretch' for `size: [h, w]`. */
  readonly resize?: DecodeResize;
  /**
   * 3 (default): RGB; grayscale is repeated into three channels. 1: gray;
   * colour becomes round((299 R + 587 G + 114 B) / 1000), ITU-R 601 luma as PIL's 'L'.
   */
  readonly channels?: 1 | 3;
  readonly alpha?: AlphaMode;
  /** Apply the EXIF orientation (default true; PIL's loader does not). */
  readonly autoOrient?: boolean;
}

/** A decoded image: HWC, 8 bits per value. */
export interface DecodedImage {
  readonly data: Uint8Array;
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
}

/** A file that could not be decoded; `reason` is the decoder's message. */
export class ImageDecodeError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`cannot decode image ${path}: ${reason}`);
    this.name = 'ImageDecodeError';
  }
}

export function checkDecodeOptions(opts: DecodeImageOptions, context = 'decodeImage'): void {
  const { size, resize, channels, alpha } = opts;
  const posInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1;
  if (
    size !== undefined &&
    !posInt(size) &&
    !(Array.isArray(size) && size.length === 2 && posInt(size[0]) && posInt(size[1]))
  ) {
    throw new Error(
      `${context}: size must be n or [height, width] of positive integers, got ${JSON.stringify(size)}`,
    );
  }
  if (resize !== undefined && resize !== 'stretch' && resize !== 'shorter-side')
    throw new Error(
      `${context}: resize must be 'stretch' or 'shorter-side', got ${JSON.stringify(resize)}`,
    );
  if (channels !== undefined && channels !== 1 && channels !== 3)
    throw new Error(`${context}: channels must be 1 or 3, got ${JSON.stringify(channels)}`);
  if (alpha !== undefined && alpha !== 'drop' && alpha !== 'black')
    throw new Error(`${context}: alpha must be 'drop' or 'black', got ${JSON.stringify(alpha)}`);
}

/**
 * The [height, width] every image decodes to, when `opts` fixes it (a
 * `[h, w]` size); undefined otherwise.
 */
export function decodedSize(opts: DecodeImageOptions): [number, number] | undefined {
  const { size, resize } = opts;
  if (size === undefined) return undefined;
  if (typeof size === 'number')
    return (resize ?? 'shorter-side') === 'stretch' ? [size, size] : undefined;
  return [size[0], size[1]];
}

function rawPixels(img: ReturnType<typeof sharp>) {
  return img.raw().toBuffer({ resolveWithObject: true });
}

/**
 * Decode an image file (JPEG, PNG, WebP, GIF, TIFF, AVIF: whatever sharp's
 * bundled libvips reads) into 8-bit HWC pixels in sRGB. A truncated or
 * unreadable file rejects with an `ImageDecodeError`; bad options throw a
 * plain Error.
 */
export async function decodeImage(
  path: string,
  opts: DecodeImageOptions = {},
): Promise<DecodedImage> {
  checkDecodeOptions(opts);
  const channels = opts.channels ?? 3;
  let raw: Awaited<ReturnType<typeof rawPixels>>;
  try {
    // failOn 'truncated': refuse cut-off files but accept the benign warnings
    // that many cameras' JPEGs trigger (as PIL does).
    let img = sharp(path, { failOn: 'truncated', autoOrient: opts.autoOrient ?? true });
    img =
      (opts.alpha ?? 'drop') === 'black'
        ? img.flatten({ background: '#000000' })
        : img.removeAlpha();
    if (opts.size !== undefined) {
      const [h, w] = typeof opts.size === 'number' ? [opts.size, opts.size] : opts.size;
      const mode = opts.resize ?? (typeof opts.size === 'number' ? 'shorter-side' : 'stretch');
      const fit = mode === 'stretch' ? 'fill' : typeof opts.size === 'number' ? 'outside' : 'cover';
      img = img.resize({ height: h, width: w, fit, position: 'centre', kernel: 'lanczos3' });
    }
    raw = await rawPixels(img);
  } catch (err) {
    // libvips repeats its messages over several lines; the first says it.
    const reason = ((err as Error).message ?? String(err)).split('\n')[0] ?? 'unknown error';
    throw new ImageDecodeError(path, reason);
  }
  const { data, info } = raw;
  const { width, height } = info;
  const srcC = info.channels;
  // After removeAlpha/flatten sharp gives 1 (b-w) or 3 (sRGB) channels.
  if (srcC !== 1 && srcC !== 3)
    throw new ImageDecodeError(path, `decoded to ${srcC} channels, expected 1 or 3`);
  const n = width * height;
  if (srcC === channels)
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, n * channels),
      height,
      width,
      channels,
    };
  const out = new Uint8Array(n * channels);
  if (channels === 3) {
    for (let i = 0; i < n; i++) {
      const v = data[i] as number;
      out[3 * i] = v;
      out[3 * i + 1] = v;
      out[3 * i + 2] = v;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const r = data[3 * i] as number;
      const g = data[3 * i + 1] as number;
      const b = data[3 * i + 2] as number;
      out[i] = Math.round((299 * r + 587 * g + 114 * b) / 1000);
    }
  }
  return { data: out, height, width, channels };
}
