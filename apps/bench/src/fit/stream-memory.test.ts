/**
 * The stream-memory benchmark's machinery on a small folder: photos written
 * once and reused, both epochs measured in child processes, the table. The
 * measurement itself (4000+ photos, minutes) is run by hand; README has it.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensurePhotos,
  formatStreamMemory,
  type StreamMemoryResult,
  streamMemoryBench,
} from './stream-memory.js';
import { makeTempDir, removeDir } from './test-fixtures.js';

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('transferlab-stream-memory-');
});
afterAll(async () => {
  await removeDir(dir);
});

describe('stream-memory', () => {
  it('writes the photos once: a second call reuses them, a larger N adds only the new ones', async () => {
    const photos = join(dir, 'cache');
    const first = await ensurePhotos(photos, 12);
    expect(first.entries).toHaveLength(12);
    expect(first.entries[11]).toEqual({
      path: join(photos, 'class-1', 'photo-000011.jpg'),
      label: 1,
    });
    // Photo-like: tens of kB of JPEG each, as photos of this size are.
    expect(first.meanFileBytes).toBeGreaterThan(20_000);
    const written = (await stat(first.entries[0]?.path as string)).mtimeMs;
    const again = await ensurePhotos(photos, 15);
    expect(again.entries).toHaveLength(15);
    expect((await stat(again.entries[0]?.path as string)).mtimeMs).toBe(written);
    expect((await stat(again.entries[14]?.path as string)).size).toBeGreaterThan(0);
  });

  it('measures an eval and an augmented epoch in child processes and prints the table', async () => {
    const lines: string[] = [];
    const res: StreamMemoryResult = await streamMemoryBench({
      images: 40,
      size: 64,
      capMb: 1,
      batch: 8,
      dir: join(dir, 'bench'),
      sampleMs: 20,
      log: (l) => lines.push(l),
    });
    expect(res.rows.map((r) => r.pass)).toEqual(['eval', 'augment']);
    for (const r of res.rows) {
      expect(r).toMatchObject({ images: 40, batches: 5, skipped: 0 });
      expect(r.decodedBytes).toBe(40 * 64 * 64 * 3 * 4);
      expect(r.capBytes).toBe(2 ** 20);
      expect(r.samples).toBeGreaterThanOrEqual(2);
      expect(r.peakRss).toBeGreaterThanOrEqual(r.rssStart);
      expect(r.maxRss).toBeGreaterThanOrEqual(r.peakRss * 0.9);
      expect(r.imagesPerSecond).toBeGreaterThan(0);
    }
    // 40 × 64² × 3 floats is under 10 × 1 MiB: said so.
    expect(res.notes[0]).toMatch(/less than 10× the cap: give --images 214 or more/);
    const table = formatStreamMemory(res);
    expect(table).toContain('| pass | images | decoded epoch (MiB) | cap (MiB) |');
    expect(table).toMatch(/^\| eval \| 40 \| 2 \| 1 \|/m);
    expect(table).toMatch(/^augment: (flat|NOT flat) — slope /m);
    expect(lines.some((l) => l.includes('augment epoch over 40 photos at 64×64'))).toBe(true);
  });
});
