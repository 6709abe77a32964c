/**
 * fit --memory-cap-mb: splits whose decoded images do not fit under the cap
 * are streamed from disk each time they are read. Streaming must change
 * nothing but memory and time: the same seed gives the same batches, the
 * same weights, the same logits to the last bit.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@transferlab/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Progress } from '../progress.js';
import { fit as fitCli } from './commands.js';
import { type FitOptions, type FitResult, fitCommand } from './fit.js';
import { makeShapeFolder, makeTempDir, removeDir, type ShapeFolder } from './test-fixtures.js';

const here = dirname(fileURLToPath(import.meta.url));
const TORCH_CNN = join(here, 'fixtures/torch-cnn.onnx');
const quiet: Progress = { trial() {}, epoch() {}, done() {}, close() {} };

let dir: string;
let folder: ShapeFolder;

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  dir = await makeTempDir('transferlab-cap-');
  // Decoded at 32×32×3 float32: train 1.7 MiB, val 0.35 MiB, test 0.54 MiB.
  folder = await makeShapeFolder(join(dir, 'shapes'), { train: 48, val: 10, test: 15 });
});

afterAll(async () => {
  await removeDir(dir);
});

async function run(name: string, extra: Partial<FitOptions>) {
  let text = '';
  const result = await fitCommand({
    data: folder.root,
    backbone: TORCH_CNN,
    imageSize: 32,
    normalize: 'imagenet',
    epochs: 3,
    seed: 5,
    out: join(dir, name),
    backend: 'cpu',
    progress: quiet,
    write: (s) => {
      text += s;
    },
    ...extra,
  });
  return { result, text };
}

/**
 * Everything a run computes, without what differs by design (time, the
 * memory plan) or by chance: libvips' message for the corrupt JPEG is at
 * times "Unknown error" when decodes run in parallel — the file is listed either way.
 */
function outcome(r: FitResult) {
  const { duration_s: _, memory: __, skipped_files, ...metrics } = r.metrics;
  return { metrics, skipped: skipped_files.map((f) => f.path), test: r.test };
}

describe('fit under a memory cap', () => {
  it('streams every split under a tiny cap and gets the in-memory run exactly (same seed: same batches, weights, logits)', async () => {
    const inMemory = await run('in-memory', {});
    const streamed = await run('streamed', { memoryCapMb: 0.001 });
    expect(inMemory.result.metrics.memory.streamed).toEqual([]);
    expect(streamed.result.metrics.memory.streamed).toEqual(['train', 'val', 'test']);
    expect(streamed.text).toMatch(
      /memory: cap 0\.001 MiB of decoded images; in memory: none; streamed from disk at every read: train 1\.7 MiB, val 0\.35 MiB, test 0\.54 MiB/,
    );
    // The corrupt JPEG is found by the checking pass, as loading finds it.
    expect(streamed.result.metrics.skipped_files.map((f) => f.path)).toEqual([
      folder.stray,
      folder.corrupt,
    ]);
    expect(streamed.result.metrics.sizes).toEqual({ train: 144, val: 30, test: 45 });
    expect(outcome(streamed.result)).toEqual(outcome(inMemory.result));
    expect(streamed.result.metrics.onnx_max_abs_diff).toBeLessThanOrEqual(1e-4);
    expect(inMemory.result.metrics.target_test_acc).toBeGreaterThanOrEqual(0.6);
  });

  it('with --augment, a cap that streams train only keeps val and test in memory and changes nothing', async () => {
    const inMemory = await run('aug-in-memory', { augment: true });
    const capped = await run('aug-capped', { augment: true, memoryCapMb: 1 });
    expect(capped.result.metrics.memory.streamed).toEqual(['train']);
    expect(capped.text).toMatch(
      /in memory: val 0\.35 MiB, test 0\.54 MiB; streamed from disk at every read: train 1\.7 MiB/,
    );
    expect(outcome(capped.result)).toEqual(outcome(inMemory.result));
  });

  it('refuses a method that needs the whole training split in memory, and a bad cap', async () => {
    await expect(run('delta', { method: 'delta', memoryCapMb: 1 })).rejects.toThrow(
      /fit: delta computes from the whole training split before training, which needs it in memory: 1\.7 MiB decoded, more than --memory-cap-mb 1/,
    );
    await expect(run('zero', { memoryCapMb: 0 })).rejects.toThrow(
      'fit: --memory-cap-mb must be a positive number, got 0',
    );
    await expect(
      fitCli.run({ data: folder.root, backbone: 'cnn', out: dir, 'memory-cap-mb': 'lots' }, []),
    ).rejects.toThrow('--memory-cap-mb must be a positive number (MiB), got "lots"');
  });
});
