import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { createRng, initBackend } from '@transferlab/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createBackbone, mlpSpec } from './backbone.js';
import { decodeParams, encodeParams, loadParams, saveParams } from './checkpoint.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('params checkpoints', () => {
  it('round-trip bit-exactly with metadata', async () => {
    const params = createBackbone(mlpSpec([5], [4, 3])).init(createRng(9));
    const dir = mkdtempSync(join(tmpdir(), 'tl-ckpt-'));
    const file = join(dir, 'p.tlparams');
    await saveParams(file, params, { task: 't', acc: 0.5 });
    const loaded = await loadParams(file);
    expect(loaded.meta).toEqual({ task: 't', acc: 0.5 });
    expect(Object.keys(loaded.params)).toEqual(Object.keys(params));
    for (const [name, t] of Object.entries(params)) {
      expect(loaded.params[name]?.shape).toEqual(t.shape);
      expect(Array.from(loaded.params[name]?.dataSync() ?? [])).toEqual(Array.from(t.dataSync()));
    }
    // the header is readable JSON right after the 12-byte preamble
    const bytes = readFileSync(file);
    expect(bytes.subarray(0, 8).toString()).toBe('TLPARAMS');
    const headerLength = bytes.readUInt32LE(8);
    expect(JSON.parse(bytes.subarray(12, 12 + headerLength).toString()).format).toBe(
      'transferlab-params',
    );
  });

  it('refuses truncated, foreign and missing files, naming the file', async () => {
    const bytes = encodeParams({ w: tf.ones([10, 10]) });
    expect(() => decodeParams(bytes.subarray(0, bytes.length - 8), 'cut.tlparams')).toThrow(
      'cut.tlparams: not a valid transferlab params file: tensor "w" runs past the end of the file (truncated?)',
    );
    expect(() =>
      decodeParams(new TextEncoder().encode('PK\u0003\u0004 not ours at all'), 'x.zip'),
    ).toThrow(/x\.zip: .*bad magic/);
    expect(() => decodeParams(bytes.subarray(0, 5), 'tiny')).toThrow(
      /tiny: .*shorter than the 12-byte preamble/,
    );
    const dir = mkdtempSync(join(tmpdir(), 'tl-ckpt-'));
    const bad = join(dir, 'bad.tlparams');
    writeFileSync(
      bad,
      Buffer.concat([Buffer.from('TLPARAMS'), Buffer.from([3, 0, 0, 0]), Buffer.from('{{{')]),
    );
    await expect(loadParams(bad)).rejects.toThrow(/bad\.tlparams: .*header is not JSON/);
    await expect(loadParams(join(dir, 'nope.tlparams'))).rejects.toThrow(
      /cannot read params file .*nope\.tlparams/,
    );
  });
});
