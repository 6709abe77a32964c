import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type { Params } from '@transferlab/core';
import { decodeSafetensors, encodeSafetensors } from './safetensors.js';

/** `.safetensors` files are written and read in that format; every other path as `.tlparams`. */
const isSafetensors = (path: string) => path.toLowerCase().endsWith('.safetensors');

/**
 * The `.tlparams` file format (version 1), little-endian:
 *
 *   bytes 0..7    magic "TLPARAMS"
 *   bytes 8..11   uint32 header length H
 *   bytes 12..    UTF-8 JSON header of H bytes:
 *                 { "format": "transferlab-params", "version": 1,
 *                   "tensors": [{ "name", "dtype": "float32", "shape", "offset", "length" }],
 *                   "meta": { ... free-form ... } }
 *   then          the data: float32 values, tensor after tensor; `offset` is in
 *                 bytes from the start of the data section, `length` in values.
 */
const MAGIC = 'TLPARAMS';

interface Header {
  format: 'transferlab-params';
  version: 1;
  tensors: { name: string; dtype: 'float32'; shape: number[]; offset: number; length: number }[];
  meta: Record<string, unknown>;
}

export function encodeParams(params: Params, meta: Record<string, unknown> = {}): Uint8Array {
  const tensors: Header['tensors'] = [];
  let offset = 0;
  const arrays: Float32Array[] = [];
  for (const [name, t] of Object.entries(params)) {
    if (t.dtype !== 'float32')
      throw new Error(`encodeParams: "${name}" is ${t.dtype}; only float32 is supported`);
    const values = t.dataSync() as Float32Array;
    tensors.push({ name, dtype: 'float32', shape: [...t.shape], offset, length: values.length });
    arrays.push(values);
    offset += values.length * 4;
  }
  const header: Header = { format: 'transferlab-params', version: 1, tensors, meta };
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(12 + headerBytes.length + offset);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, headerBytes.length, true);
  out.set(headerBytes, 12);
  const view = new DataView(out.buffer, 12 + headerBytes.length);
  let pos = 0;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++, pos += 4) view.setFloat32(pos, a[i] as number, true);
  }
  return out;
}

export function decodeParams(
  bytes: Uint8Array,
  source = '<buffer>',
): { params: Params; meta: Record<string, unknown> } {
  const fail = (what: string): never => {
    throw new Error(`${source}: not a valid transferlab params file: ${what}`);
  };
  if (bytes.length < 12) fail(`file is ${bytes.length} bytes, shorter than the 12-byte preamble`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC)
    fail(`bad magic (expected "${MAGIC}")`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = dv.getUint32(8, true);
  if (12 + headerLength > bytes.length)
    fail(`header of ${headerLength} bytes runs past the end of the file (truncated?)`);
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLength))) as Header;
  } catch (err) {
    return fail(`header is not JSON (${(err as Error).message})`);
  }
  if (header.format !== 'transferlab-params' || header.version !== 1) {
    fail(`unsupported format/version ${String(header.format)}/${String(header.version)}`);
  }
  const dataStart = 12 + headerLength;
  const params: Record<string, tf.Tensor> = {};
  for (const t of header.tensors) {
    const expected = t.shape.reduce((a, b) => a * b, 1);
    if (expected !== t.length)
      fail(`tensor "${t.name}" has shape [${t.shape}] but ${t.length} values`);
    const end = dataStart + t.offset + t.length * 4;
    if (end > bytes.length) fail(`tensor "${t.name}" runs past the end of the file (truncated?)`);
    const values = new Float32Array(t.length);
    const view = new DataView(bytes.buffer, bytes.byteOffset + dataStart + t.offset, t.length * 4);
    for (let i = 0; i < t.length; i++) values[i] = view.getFloat32(i * 4, true);
    params[t.name] = tf.tensor(values, t.shape, 'float32');
  }
  return { params, meta: header.meta ?? {} };
}

/** Write atomically (temp file + rename), so a crash never leaves half a checkpoint. */
export async function saveParams(
  path: string,
  params: Params,
  meta: Record<string, unknown> = {},
): Promise<void> {
  // Unique across hosts too: workers on several machines may share a cache directory.
  const tmp = `${path}.tmp-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(
    tmp,
    isSafetensors(path) ? encodeSafetensors(params, meta) : encodeParams(params, meta),
  );
  await rename(tmp, path);
}

export async function loadParams(
  path: string,
): Promise<{ params: Params; meta: Record<string, unknown> }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new Error(`cannot read params file ${path}: ${(err as Error).message}`);
  }
  return isSafetensors(path) ? decodeSafetensors(bytes, path) : decodeParams(bytes, path);
}
