import { gunzipSync } from 'node:zlib';
import type { Dataset } from './types.js';

/**
 * The IDX format (used by MNIST and Fashion-MNIST): a 4-byte magic number
 * `0x00 0x00 <type> <ndims>`, then `ndims` big-endian uint32 dimension sizes,
 * then the data in row-major order. Only type 0x08 (unsigned byte) is
 * supported, which is what the (Fashion-)MNIST files use.
 */
export interface IdxArray {
  /** Dimension sizes from the header, e.g. [60000, 28, 28]. */
  readonly dims: readonly number[];
  /** The payload, one unsigned byte per element. */
  readonly data: Uint8Array;
}

const UBYTE = 0x08;
const TYPE_NAMES = new Map<number, string>([
  [0x08, 'unsigned byte'],
  [0x09, 'signed byte'],
  [0x0b, 'int16'],
  [0x0c, 'int32'],
  [0x0d, 'float32'],
  [0x0e, 'float64'],
]);

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

/** True when the bytes start with the gzip magic number 1f 8b. */
export function isGzip(buffer: Uint8Array): boolean {
  return buffer.length >= 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
}

/**
 * Parse an IDX file held in memory. Gzip-compressed input (magic 1f 8b) is
 * inflated first. Every malformation throws an Error whose message starts
 * with `fileLabel` (normally the file's path) and says what is wrong.
 */
export function parseIdx(buffer: Uint8Array, fileLabel: string): IdxArray {
  let bytes = buffer;
  if (isGzip(buffer)) {
    try {
      bytes = gunzipSync(buffer);
    } catch (err) {
      throw new Error(`${fileLabel}: corrupt gzip data (${(err as Error).message})`);
    }
  }
  if (bytes.length < 4) {
    throw new Error(
      `${fileLabel}: not an IDX file: only ${bytes.length} bytes, shorter than the 4-byte magic number`,
    );
  }
  const [b0, b1, type, ndims] = bytes as unknown as [number, number, number, number];
  if (b0 !== 0 || b1 !== 0) {
    const magic = [b0, b1, type, ndims].map(hex).join(' ');
    throw new Error(
      `${fileLabel}: bad IDX magic number ${magic}: the first two bytes must be 0x00 0x00`,
    );
  }
  if (type !== UBYTE) {
    const known = TYPE_NAMES.get(type);
    throw new Error(
      `${fileLabel}: unsupported IDX type code ${hex(type)}${known ? ` (${known})` : ' (unknown)'}; only 0x08 (unsigned byte) is supported`,
    );
  }
  if (ndims === 0) throw new Error(`${fileLabel}: IDX header declares 0 dimensions`);
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new Error(
      `${fileLabel}: truncated IDX header: ${ndims} dimensions need ${headerBytes} header bytes, file has ${bytes.length}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const available = bytes.length - headerBytes;
  if (available < count) {
    throw new Error(
      `${fileLabel}: truncated IDX data: dimensions [${dims.join(', ')}] need ${count} bytes after the header, found ${available}`,
    );
  }
  if (available > count) {
    throw new Error(
      `${fileLabel}: IDX size mismatch: dimensions [${dims.join(', ')}] need ${count} bytes after the header, found ${available} (${available - count} extra)`,
    );
  }
  return { dims, data: bytes.subarray(headerBytes, headerBytes + count) };
}

export interface IdxPairOptions {
  readonly name: string;
  readonly numClasses: number;
  readonly classNames?: readonly string[];
}

/**
 * Combine an IDX image file ([n, h, w] bytes) and an IDX label file ([n]
 * bytes) into a Dataset of shape [h, w, 1] with pixels scaled to [0, 1].
 * Mismatched counts, wrong ranks and out-of-range labels throw errors naming
 * the file(s).
 */
export function idxToDataset(
  images: IdxArray,
  imagesLabel: string,
  labels: IdxArray,
  labelsLabel: string,
  opts: IdxPairOptions,
): Dataset {
  if (images.dims.length !== 3) {
    throw new Error(
      `${imagesLabel}: expected a 3-dimensional IDX image file [n, rows, cols], got dimensions [${images.dims.join(', ')}]`,
    );
  }
  if (labels.dims.length !== 1) {
    throw new Error(
      `${labelsLabel}: expected a 1-dimensional IDX label file [n], got dimensions [${labels.dims.join(', ')}]`,
    );
  }
  const [n, rows, cols] = images.dims as [number, number, number];
  const nLabels = labels.dims[0] as number;
  if (n !== nLabels) {
    throw new Error(
      `IDX size mismatch: ${imagesLabel} holds ${n} images but ${labelsLabel} holds ${nLabels} labels`,
    );
  }
  if (n === 0) throw new Error(`${imagesLabel}: IDX image file holds 0 images`);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = labels.data[i] as number;
    if (label >= opts.numClasses) {
      throw new Error(`${labelsLabel}: label #${i} is ${label}, outside 0..${opts.numClasses - 1}`);
    }
    y[i] = label;
  }
  const x = new Float32Array(images.data.length);
  for (let i = 0; i < x.length; i++) x[i] = (images.data[i] as number) / 255;
  return {
    name: opts.name,
    x,
    y,
    shape: [rows, cols, 1],
    numClasses: opts.numClasses,
    ...(opts.classNames ? { classNames: opts.classNames } : {}),
  };
}
