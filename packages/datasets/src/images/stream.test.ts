import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TransformStep } from './augment.js';
import { type ImageEntry, scanImageFolder } from './image-folder.js';
import { type ImageBatch, imageBatches, loadImageFolderDataset } from './stream.js';
import {
  makeTempDir,
  type RawPixels,
  removeDir,
  solid,
  writeGarbage,
  writeImage,
  writeText,
  writeTruncatedJpeg,
} from './test-fixtures.js';

let root: string;
let big: string; // 4 classes × 125 solid 6×6 PNGs
let small: string; // 2 classes, with a corrupt PNG, a truncated JPEG and a text file
const PER_CLASS = 125;

// Image i of class c: r = i, g = 40·c, b = 7 (+ 30·x in the big set, so that
// crops and flips show) — every row of x names its file.
const colour = (c: number, i: number) => [i, 40 * c, 7];

function ramp(c: number, i: number): RawPixels {
  const data = new Uint8Array(6 * 6 * 3);
  for (let p = 0; p < 36; p++) data.set([i, 40 * c, 7 + 30 * (p % 6)], p * 3);
  return { data, width: 6, height: 6, channels: 3 };
}

beforeAll(async () => {
  root = await makeTempDir();
  big = join(root, 'big');
  small = join(root, 'small');
  const jobs: Promise<void>[] = [];
  for (let c = 0; c < 4; c++)
    for (let i = 0; i < PER_CLASS; i++)
      jobs.push(writeImage(join(big, `class${c}`, `${i}.png`), ramp(c, i)));
  for (let i = 0; i < 5; i++) {
    jobs.push(writeImage(join(small, 'a', `${i}.png`), solid(10, 8, colour(0, i))));
    jobs.push(writeImage(join(small, 'b', `${i}.png`), solid(8, 10, colour(1, i))));
  }
  jobs.push(writeGarbage(join(small, 'a', 'corrupt.png')));
  jobs.push(writeTruncatedJpeg(join(small, 'b', 'cut.jpg')));
  jobs.push(writeText(join(small, 'b', 'notes.txt'), 'not an image'));
  await Promise.all(jobs);
}, 60_000);
afterAll(async () => {
  await removeDir(root);
});

async function all(stream: AsyncIterable<ImageBatch>): Promise<ImageBatch[]> {
  const out: ImageBatch[] = [];
  for await (const b of stream) out.push(b);
  return out;
}

function pool(scan: { splits: { train: readonly ImageEntry[] } }): readonly ImageEntry[] {
  return scan.splits.train;
}

describe('imageBatches', () => {
  it('streams 500 images: every entry exactly once per epoch, rows match files, bounded', async () => {
    const scan = await scanImageFolder(big, { fractions: { train: 1, val: 0, test: 0 } });
    const entries = pool(scan);
    expect(entries.length).toBe(500);
    const stream = imageBatches(entries, {
      batchSize: 32,
      decode: { size: [6, 6] },
      shuffle: true,
      seed: 1,
      concurrency: 3,
    });
    expect(stream.imageShape).toEqual([6, 6, 3]);
    const batches = await all(stream);
    expect(batches.length).toBe(16);
    expect(batches.slice(0, 15).every((b) => b.paths.length === 32)).toBe(true);
    expect(batches[15]?.paths.length).toBe(500 - 15 * 32);
    const seen = batches.flatMap((b) => b.paths);
    expect([...seen].sort()).toEqual(entries.map((e) => e.path).sort());
    expect(new Set(seen).size).toBe(500);
    // Shuffled: not in listing order.
    expect(seen).not.toEqual(entries.map((e) => e.path));
    const labelOf = new Map(entries.map((e) => [e.path, e.label]));
    for (const b of batches) {
      expect(b.shape).toEqual([b.paths.length, 6, 6, 3]);
      expect(b.x.length).toBe(b.paths.length * 108);
      b.paths.forEach((p, row) => {
        const label = labelOf.get(p) as number;
        expect(b.y[row]).toBe(label);
        const i = Number(p.slice(p.lastIndexOf('/') + 1, -4));
        const [r, g] = colour(label, i) as [number, number, number];
        const bl = 7 + 30 * 5;
        // Last pixel of the row's image: no transforms, so x = v / 255 exactly.
        const o = row * 108 + 105;
        expect([b.x[o], b.x[o + 1], b.x[o + 2]]).toEqual(
          [r, g, bl].map((v) => Math.fround(v / 255)),
        );
      });
    }
    expect(stream.stats.decoded).toBe(500);
    expect(stream.stats.skipped).toBe(0);
    expect(stream.stats.maxInFlight).toBeLessThanOrEqual(3);
    expect(stream.stats.maxPending).toBeLessThanOrEqual(3);
    expect(stream.stats.maxInFlight).toBeGreaterThanOrEqual(2); // decodes did overlap
    expect(stream.stats.inFlight).toBe(0);
  });

  it('holds at most `concurrency` images, however slow the consumer', async () => {
    const entries = pool(await scanImageFolder(big, { fractions: { train: 1, val: 0, test: 0 } }));
    const stream = imageBatches(entries.slice(0, 60), {
      batchSize: 8,
      decode: { size: [6, 6] },
      concurrency: 2,
    });
    let n = 0;
    for await (const b of stream) {
      n += b.paths.length;
      // The consumer is slow: the streamer must not read ahead meanwhile.
      await new Promise((r) => setTimeout(r, 5));
      expect(stream.stats.pending).toBeLessThanOrEqual(2);
    }
    expect(n).toBe(60);
    expect(stream.stats.maxPending).toBeLessThanOrEqual(2);
    expect(stream.stats.maxInFlight).toBeLessThanOrEqual(2);
    // Not shuffled: listing order.
    const first = await all(
      imageBatches(entries.slice(0, 10), { batchSize: 4, decode: { size: [6, 6] } }),
    );
    expect(first.flatMap((b) => b.paths)).toEqual(entries.slice(0, 10).map((e) => e.path));
  });

  it('skips corrupt files with their reasons and keeps going', async () => {
    const scan = await scanImageFolder(small, { fractions: { train: 1, val: 0, test: 0 } });
    expect(scan.skipped).toEqual([
      { path: join(small, 'b', 'notes.txt'), reason: 'not an image file (extension ".txt")' },
    ]);
    const entries = pool(scan);
    expect(entries.length).toBe(12);
    const seen: string[] = [];
    const stream = imageBatches(entries, {
      batchSize: 4,
      decode: { size: [4, 4] },
      onSkip: (f) => seen.push(f.path),
    });
    const batches = await all(stream);
    expect(batches.map((b) => b.paths.length)).toEqual([4, 4, 2]);
    expect(stream.stats.skipped).toBe(2);
    expect(stream.stats.decoded).toBe(10);
    expect(stream.skipped.map((s) => s.path)).toEqual([
      join(small, 'a', 'corrupt.png'),
      join(small, 'b', 'cut.jpg'),
    ]);
    expect(stream.skipped[0]?.reason).toMatch(/unsupported image format/);
    expect(stream.skipped[1]?.reason).toMatch(/premature end of JPEG/);
    expect(seen).toEqual(stream.skipped.map((s) => s.path));
    const used = batches.flatMap((b) => b.paths);
    expect(used).toEqual(entries.map((e) => e.path).filter((p) => !seen.includes(p)));
  });

  it('one seed replays the augmented batches exactly; another seed or epoch differs', async () => {
    const entries = pool(await scanImageFolder(big, { fractions: { train: 1, val: 0, test: 0 } }));
    const steps: TransformStep[] = [
      { op: 'randomResizedCrop', size: 4, scale: [0.2, 1] },
      { op: 'horizontalFlip' },
      { op: 'normalize', preset: 'imagenet' },
    ];
    const some = entries.slice(100, 160);
    const run = (seed: number, epoch = 0, concurrency = 3) =>
      all(
        imageBatches(some, {
          batchSize: 16,
          transforms: steps,
          shuffle: true,
          seed,
          epoch,
          concurrency,
        }),
      );
    const a = await run(4);
    const b = await run(4, 0, 1); // same batches whatever the decode interleaving
    expect(b.map((x) => x.paths)).toEqual(a.map((x) => x.paths));
    expect(b.map((x) => Array.from(x.x))).toEqual(a.map((x) => Array.from(x.x)));
    const c = await run(5);
    expect(c.map((x) => x.paths)).not.toEqual(a.map((x) => x.paths));
    // Same order (no shuffle), other seed: the crops and flips differ.
    const fixed = (seed: number) =>
      all(imageBatches(some, { batchSize: 16, transforms: steps, seed })).then((bs) =>
        bs.map((x) => Array.from(x.x)),
      );
    expect(await fixed(4)).not.toEqual(await fixed(5));
    const d = await run(4, 1);
    expect(d.map((x) => x.paths)).not.toEqual(a.map((x) => x.paths));
    // Iterating one stream twice replays it.
    const stream = imageBatches(some, { batchSize: 16, transforms: steps, shuffle: true, seed: 4 });
    const first = await all(stream);
    const second = await all(stream);
    expect(second.map((x) => Array.from(x.x))).toEqual(first.map((x) => Array.from(x.x)));
    expect(first.map((x) => Array.from(x.x))).toEqual(a.map((x) => Array.from(x.x)));
  });

  it('augmentation differs between seeds on the same order', async () => {
    const entries = pool(
      await scanImageFolder(small, { fractions: { train: 1, val: 0, test: 0 } }),
    );
    const good = entries.filter((e) => e.path.endsWith('0.png'));
    // A left/right split image: the flip shows.
    const half = join(root, 'half.png');
    const px = new Uint8Array(4 * 4 * 3);
    for (let i = 0; i < 16; i++) px.fill(i % 4 < 2 ? 0 : 255, i * 3, i * 3 + 3);
    await writeImage(half, { data: px, width: 4, height: 4, channels: 3 });
    const list = [...good, ...Array.from({ length: 8 }, () => ({ path: half, label: 0 }))];
    const steps: TransformStep[] = [{ op: 'resize', size: [4, 4] }, { op: 'horizontalFlip' }];
    const x = async (seed: number) =>
      Array.from(
        (await all(imageBatches(list, { batchSize: 100, transforms: steps, seed })))[0]?.x ?? [],
      );
    expect(await x(1)).toEqual(await x(1));
    expect(await x(1)).not.toEqual(await x(2));
  });

  it('refuses, before any work, batches of mixed sizes and a 3-channel preset on gray', () => {
    const entries = [{ path: '/nonexistent.png', label: 0 }];
    expect(() => imageBatches(entries, { batchSize: 2 })).toThrow(
      /different sizes cannot share a batch/,
    );
    expect(() =>
      imageBatches(entries, {
        batchSize: 2,
        decode: { channels: 1, size: [4, 4] },
        transforms: [{ op: 'normalize', preset: 'imagenet' }],
      }),
    ).toThrow(/image has 1 channel/);
    expect(() => imageBatches(entries, { batchSize: 0, decode: { size: [4, 4] } })).toThrow(
      /batchSize/,
    );
  });

  it('stops cleanly when the consumer breaks off', async () => {
    const entries = pool(await scanImageFolder(big, { fractions: { train: 1, val: 0, test: 0 } }));
    const stream = imageBatches(entries, { batchSize: 10, decode: { size: [6, 6] } });
    let n = 0;
    for await (const b of stream) {
      n += b.paths.length;
      if (n >= 20) break;
    }
    expect(n).toBe(20);
    expect(stream.stats.batches).toBe(2);
  });
});

describe('loadImageFolderDataset', () => {
  it('decodes a small folder into a Dataset, listing the skipped files', async () => {
    const scan = await scanImageFolder(small, { fractions: { train: 1, val: 0, test: 0 } });
    const ds = await loadImageFolderDataset(pool(scan), {
      classes: scan.classes,
      decode: { size: [5, 5] },
      name: 'small',
    });
    expect(ds.name).toBe('small');
    expect(ds.shape).toEqual([5, 5, 3]);
    expect(ds.numClasses).toBe(2);
    expect(ds.classNames).toEqual(['a', 'b']);
    expect(ds.y.length).toBe(10);
    expect(ds.x.length).toBe(10 * 75);
    expect(Array.from(ds.y)).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    expect(ds.skipped.map((s) => s.path)).toEqual([
      join(small, 'a', 'corrupt.png'),
      join(small, 'b', 'cut.jpg'),
    ]);
    // Row 3 is a/3.png: solid colour (3, 0, 7), kept by the resize to within 1/255.
    for (let k = 0; k < 75; k++) {
      const want = ([3, 0, 7][k % 3] as number) / 255;
      expect(Math.abs((ds.x[3 * 75 + k] as number) - want)).toBeLessThanOrEqual(1 / 255 + 1e-7);
    }
    expect(ds.paths[3]).toBe(join(small, 'a', '3.png'));
  });

  it('refuses a folder that would not fit in maxBytes, and one where nothing decodes', async () => {
    const scan = await scanImageFolder(small, { fractions: { train: 1, val: 0, test: 0 } });
    await expect(
      loadImageFolderDataset(pool(scan), {
        classes: scan.classes,
        decode: { size: [64, 64] },
        maxBytes: 1000,
      }),
    ).rejects.toThrow(/more than maxBytes .* stream them with imageBatches/);
    const bad = pool(scan).filter((e) => /corrupt|cut/.test(e.path));
    await expect(
      loadImageFolderDataset(bad, { classes: scan.classes, decode: { size: [4, 4] } }),
    ).rejects.toThrow(/none of the 2 images could be decoded/);
  });
});
