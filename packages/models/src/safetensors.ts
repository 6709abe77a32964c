import * as tf from '@tensorflow/tfjs-core';
import type { Params } from '@transferlab/core';

/**
 * The safetensors format (what PyTorch and Hugging Face users exchange):
 *
 *   bytes 0..7   uint64 little-endian N, the header's length
 *   bytes 8..    N bytes of UTF-8 JSON: { "<name>": { "dtype": "F32", "shape": [..],
 *                "data_offsets": [begin, end] }, …, "__metadata__": { string: string } }
 *   then         the byte buffer; offsets are relative to its start, tensors
 *                are row-major little-endian and tile it with no gaps.
 *
 * Written here: float32 tensors, sorted by name, the header padded with
 * spaces to a multiple of 8 so the data is aligned. Read: every float and
 * integer dtype, converted to float32 (transferlab's parameters are float32;
 * F16/BF16 checkpoints and PyTorch's int64 `num_batches_tracked` load too).
 * transferlab's free-form metadata travels as one JSON string under
 * `transferlab.meta`; other string metadata is returned as it is.
 */

const META_KEY = 'transferlab.meta';
/** Refuse absurd header lengths before allocating (the reference reader's limit is 100 MB). */
const MAX_HEADER = 100_000_000;

const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export function encodeSafetensors(params: Params, meta: Record<string, unknown> = {}): Uint8Array {
  const names = Object.keys(params).sort();
  const header: Record<string, Entry | Record<string, string>> = {
    __metadata__: { [META_KEY]: JSON.stringify(meta) },
  };
  let offset = 0;
  const arrays: Float32Array[] = [];
  for (const name of names) {
    const t = params[name] as tf.Tensor;
    if (t.dtype !== 'float32')
      throw new Error(`encodeSafetensors: "${name}" is ${t.dtype}; only float32 is written`);
    const values = t.dataSync() as Float32Array;
    header[name] = {
      dtype: 'F32',
      shape: [...t.shape],
      data_offsets: [offset, offset + values.length * 4],
    };
    arrays.push(values);
    offset += values.length * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const a of arrays)
    for (let i = 0; i < a.length; i++, pos += 4) dv.setFloat32(pos, a[i] as number, true);
  return out;
}

/** IEEE half → float. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function readValues(dv: DataView, start: number, dtype: string, count: number): Float32Array {
  const out = new Float32Array(count);
  const size = DTYPE_BYTES[dtype] as number;
  for (let i = 0; i < count; i++) {
    const p = start + i * size;
    switch (dtype) {
      case 'F64':
        out[i] = dv.getFloat64(p, true);
        break;
      case 'F32':
        out[i] = dv.getFloat32(p, true);
        break;
      case 'F16':
        out[i] = halfToFloat(dv.getUint16(p, true));
        break;
      case 'BF16': {
        // bfloat16 is the top half of a float32.
        const scratch = new DataView(new ArrayBuffer(4));
        scratch.setUint32(0, dv.getUint16(p, true) << 16, true);
        out[i] = scratch.getFloat32(0, true);
        break;
      }
      case 'I64':
        out[i] = Number(dv.getBigInt64(p, true));
        break;
      case 'I32':
        out[i] = dv.getInt32(p, true);
        break;
      case 'I16':
        out[i] = dv.getInt16(p, true);
        break;
      case 'I8':
        out[i] = dv.getInt8(p);
        break;
      default:
        out[i] = dv.getUint8(p);
    }
  }
  return out;
}

export function decodeSafetensors(
  bytes: Uint8Array,
  source = '<buffer>',
): { params: Params; meta: Record<string, unknown> } {
  const fail = (what: string): never => {
    throw new Error(`${source}: not a valid safetensors file: ${what}`);
  };
  if (bytes.length < 8)
    fail(`file is ${bytes.length} bytes, shorter than the 8-byte length prefix`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER)) fail(`header length ${n} exceeds ${MAX_HEADER} bytes`);
  const headerLength = Number(n);
  if (8 + headerLength > bytes.length)
    fail(`header of ${headerLength} bytes runs past the end of the file (truncated?)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<
      string,
      unknown
    >;
  } catch (err) {
    return fail(`header is not JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    fail('header is not a JSON object');
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const entries: [string, Entry][] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = value as Entry;
    if (!e || typeof e !== 'object' || !(e.dtype in DTYPE_BYTES))
      fail(
        `tensor "${name}" has dtype ${JSON.stringify(e?.dtype)}; readable: ${Object.keys(DTYPE_BYTES).join(', ')}`,
      );
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0))
      fail(`tensor "${name}" has shape ${JSON.stringify(e.shape)}`);
    const [begin, end] = Array.isArray(e.data_offsets) ? e.data_offsets : [Number.NaN, Number.NaN];
    if (!Number.isInteger(begin) || !Number.isInteger(end) || begin > end)
      fail(`tensor "${name}" has data_offsets ${JSON.stringify(e.data_offsets)}`);
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * (DTYPE_BYTES[e.dtype] as number))
      fail(
        `tensor "${name}" (${e.dtype}, shape [${e.shape}]) needs ${count * (DTYPE_BYTES[e.dtype] as number)} bytes, its offsets span ${end - begin}`,
      );
    if (end > dataLength) fail(`tensor "${name}" runs past the end of the file (truncated?)`);
    entries.push([name, e]);
  }
  // Tensors must tile the buffer: no overlaps, no gaps, nothing after the last.
  const sorted = [...entries].sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  let expected = 0;
  for (const [name, e] of sorted) {
    if (e.data_offsets[0] !== expected)
      fail(
        `tensor "${name}" starts at byte ${e.data_offsets[0]}, expected ${expected} (overlap or gap)`,
      );
    expected = e.data_offsets[1];
  }
  if (expected !== dataLength) fail(`${dataLength - expected} bytes after the last tensor`);
  const params: Record<string, tf.Tensor> = {};
  for (const [name, e] of entries) {
    const count = e.shape.reduce((a, b) => a * b, 1);
    params[name] = tf.tensor(
      readValues(dv, dataStart + e.data_offsets[0], e.dtype, count),
      e.shape,
      'float32',
    );
  }
  const strings = (header.__metadata__ ?? {}) as Record<string, string>;
  let meta: Record<string, unknown> = { ...strings };
  if (typeof strings[META_KEY] === 'string') {
    try {
      meta = JSON.parse(strings[META_KEY]) as Record<string, unknown>;
    } catch {
      fail(`metadata "${META_KEY}" is not JSON`);
    }
  }
  return { params, meta };
}
