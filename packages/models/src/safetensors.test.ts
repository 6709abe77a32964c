import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@transferlab/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadParams, saveParams } from './checkpoint.js';
import { decodeSafetensors, encodeSafetensors } from './safetensors.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

/** A safetensors file built by hand from the format's definition, independent of the encoder. */
function handBuilt(header: object, data: number[]): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setUint32(0, json.length, true); // low word of the u64; high word 0
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const f32 = (...v: number[]) => [...new Uint8Array(Float32Array.from(v).buffer)];
const u16 = (...v: number[]) => [...new Uint8Array(Uint16Array.from(v).buffer)];

describe('safetensors', () => {
  it('reads a hand-built file: F32, F16 (normal, max, subnormal, −2), BF16, I64, and string metadata', () => {
    const bytes = handBuilt(
      {
        w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
        h: { dtype: 'F16', shape: [4], data_offsets: [16, 24] },
        b: { dtype: 'BF16', shape: [2], data_offsets: [24, 28] },
        n: { dtype: 'I64', shape: [], data_offsets: [28, 36] },
        __metadata__: { format: 'pt' },
      },
      [
        ...f32(1.5, -2, 3.25, 0),
        ...u16(0x3c00, 0x7bff, 0x0001, 0xc000),
        ...u16(0x3f80, 0xc0a0),
        ...[7, 0, 0, 0, 0, 0, 0, 0],
      ],
    );
    const { params, meta } = decodeSafetensors(bytes);
    expect(params.w?.shape).toEqual([2, 2]);
    expect(Array.from(params.w?.dataSync() ?? [])).toEqual([1.5, -2, 3.25, 0]);
    expect(Array.from(params.h?.dataSync() ?? [])).toEqual([1, 65504, Math.fround(2 ** -24), -2]);
    expect(Array.from(params.b?.dataSync() ?? [])).toEqual([1, -5]);
    expect(params.n?.shape).toEqual([]);
    expect(Array.from(params.n?.dataSync() ?? [])).toEqual([7]);
    expect(meta).toEqual({ format: 'pt' });
    tf.dispose(Object.values(params));
  });

  it('writes what the format says: u64 length, space-padded JSON aligned to 8, names sorted, tensors tiling the buffer', () => {
    const params = { 'z.bias': tf.tensor1d([1, 2]), 'a.kernel': tf.tensor2d([[0.5, -1, 3]]) };
    const bytes = encodeSafetensors(params, { sourceTrainAcc: 0.9 });
    const dv = new DataView(bytes.buffer);
    const n = Number(dv.getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    expect(header['a.kernel']).toEqual({ dtype: 'F32', shape: [1, 3], data_offsets: [0, 12] });
    expect(header['z.bias']).toEqual({ dtype: 'F32', shape: [2], data_offsets: [12, 20] });
    expect(header.__metadata__).toEqual({ 'transferlab.meta': '{"sourceTrainAcc":0.9}' });
    expect(bytes.length).toBe(8 + n + 20);
    expect(Array.from(new Float32Array(bytes.slice(8 + n).buffer))).toEqual([0.5, -1, 3, 1, 2]);
    tf.dispose(Object.values(params));
  });

  it('saveParams/loadParams use safetensors for a .safetensors path: a round trip keeps values and metadata', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tl-st-'));
    const params = { k: tf.tensor3d([[[0.1, 0.2]], [[0.3, -0.4]]]), b: tf.scalar(-7.5) };
    await saveParams(join(dir, 'm.safetensors'), params, { seed: 3, note: 'x' });
    const back = await loadParams(join(dir, 'm.safetensors'));
    expect(back.meta).toEqual({ seed: 3, note: 'x' });
    for (const [name, t] of Object.entries(params)) {
      expect(back.params[name]?.shape).toEqual(t.shape);
      expect(Array.from(back.params[name]?.dataSync() ?? [])).toEqual(Array.from(t.dataSync()));
    }
    tf.dispose([...Object.values(params), ...Object.values(back.params)]);
  });

  it('refuses broken files naming the file and the fault', async () => {
    const good = handBuilt({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32(1, 2));
    expect(() => decodeSafetensors(good.subarray(0, good.length - 3), 'cut.safetensors')).toThrow(
      /cut.safetensors: not a valid safetensors file: tensor "w" runs past the end/,
    );
    expect(() => decodeSafetensors(new Uint8Array(4), 'f')).toThrow(/shorter than the 8-byte/);
    const gap = handBuilt({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(1, 2));
    expect(() => decodeSafetensors(gap)).toThrow(/starts at byte 4, expected 0/);
    const size = handBuilt({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(1, 2));
    expect(() => decodeSafetensors(size)).toThrow(/needs 12 bytes, its offsets span 8/);
    const dtype = handBuilt({ w: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, f32(1, 2));
    expect(() => decodeSafetensors(dtype)).toThrow(/dtype "C64"; readable: F64, F32/);
    const tail = handBuilt({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(1, 2));
    expect(() => decodeSafetensors(tail)).toThrow(/4 bytes after the last tensor/);
    const dir = mkdtempSync(join(tmpdir(), 'tl-st-'));
    writeFileSync(
      join(dir, 'x.safetensors'),
      new Uint8Array([255, 255, 255, 255, 255, 255, 255, 255]),
    );
    await expect(loadParams(join(dir, 'x.safetensors'))).rejects.toThrow(
      /x.safetensors: not a valid safetensors file: header length \d+ exceeds/,
    );
  });
});
