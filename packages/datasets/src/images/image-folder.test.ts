import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compareCodePoints, type ImageEntry, scanImageFolder } from './image-folder.js';
import { makeTempDir, removeDir } from './test-fixtures.js';

// Scanning decodes nothing, so these fixtures are empty files with image names.
let dir: string;
beforeEach(async () => {
  dir = await makeTempDir();
});
afterEach(async () => {
  await removeDir(dir);
});

async function touch(...parts: string[]): Promise<string> {
  const path = join(dir, ...parts);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, '');
  return path;
}

async function makeClass(split: string[], name: string, n: number, ext = 'png'): Promise<void> {
  for (let i = 0; i < n; i++)
    await touch(...split, name, `img${String(i).padStart(3, '0')}.${ext}`);
}

function countByLabel(entries: readonly ImageEntry[], numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (const e of entries) counts[e.label] = (counts[e.label] as number) + 1;
  return counts;
}

describe('scanImageFolder, one pool', () => {
  it('sorts classes by code point, lists images by class, skips what is not an image', async () => {
    await makeClass([], 'zebra', 2, 'jpg');
    await makeClass([], 'apple', 2, 'JPEG');
    await makeClass([], 'Mango', 1);
    await touch('Mango', 'nested', 'deep.webp');
    const txt = await touch('apple', 'notes.txt');
    const bmp = await touch('zebra', 'old.bmp');
    const noExt = await touch('zebra', 'LICENSE');
    const stray = await touch('README.md');
    await touch('apple', '.DS_Store');
    await touch('.cache', 'x.png');
    await touch('zebra', '.hidden', 'y.png');
    const scan = await scanImageFolder(dir, { fractions: { train: 1, val: 0, test: 0 } });
    expect(scan.layout).toBe('flat');
    expect(scan.classes).toEqual(['Mango', 'apple', 'zebra']);
    expect(scan.splits.train.map((e) => [e.path.slice(dir.length + 1), e.label])).toEqual([
      ['Mango/img000.png', 0],
      ['Mango/nested/deep.webp', 0],
      ['apple/img000.JPEG', 1],
      ['apple/img001.JPEG', 1],
      ['zebra/img000.jpg', 2],
      ['zebra/img001.jpg', 2],
    ]);
    expect(scan.splits.val).toEqual([]);
    expect(scan.splits.test).toEqual([]);
    expect(scan.skipped).toEqual([
      { path: stray, reason: 'not inside a class folder' },
      { path: txt, reason: 'not an image file (extension ".txt")' },
      { path: noExt, reason: 'not an image file (no extension)' },
      { path: bmp, reason: 'not an image file (extension ".bmp")' },
    ]);
  });

  it('compareCodePoints is Python order, also past U+FFFF', () => {
    expect(['b', 'B', 'a', 'ab', '\u{1F600}', '\uFF5E'].sort(compareCodePoints)).toEqual([
      'B',
      'a',
      'ab',
      'b',
      '\uFF5E',
      '\u{1F600}',
    ]);
  });

  it('draws a seeded stratified train/val/test split with the given fractions', async () => {
    await makeClass([], 'a', 20);
    await makeClass([], 'b', 10);
    await makeClass([], 'c', 30);
    const fractions = { train: 0.6, val: 0.2, test: 0.2 };
    const scan = await scanImageFolder(dir, { seed: 7, fractions });
    expect(scan.drawn).toEqual(['val', 'test']);
    expect(countByLabel(scan.splits.train, 3)).toEqual([12, 6, 18]);
    expect(countByLabel(scan.splits.val, 3)).toEqual([4, 2, 6]);
    expect(countByLabel(scan.splits.test, 3)).toEqual([4, 2, 6]);
    const all = [...scan.splits.train, ...scan.splits.val, ...scan.splits.test].map((e) => e.path);
    expect(new Set(all).size).toBe(60);
    expect(scan.warnings).toEqual([]);

    const again = await scanImageFolder(dir, { seed: 7, fractions });
    expect(again.splits).toEqual(scan.splits);
    const other = await scanImageFolder(dir, { seed: 8, fractions });
    expect(other.splits.val).not.toEqual(scan.splits.val);
    expect(countByLabel(other.splits.val, 3)).toEqual([4, 2, 6]);
  });

  it('warns when a class is too small to reach a drawn split', async () => {
    await makeClass([], 'big', 20);
    await makeClass([], 'tiny', 2);
    const scan = await scanImageFolder(dir);
    expect(countByLabel(scan.splits.val, 2)).toEqual([2, 0]);
    expect(scan.warnings.join('\n')).toMatch(/val split .* no images of class\(es\) "tiny"/);
  });
});

describe('scanImageFolder, split folders', () => {
  it('takes train/val/test as they are', async () => {
    for (const [split, n] of [
      ['train', 5],
      ['val', 2],
      ['test', 3],
    ] as const) {
      await makeClass([split], 'cat', n);
      await makeClass([split], 'dog', n);
    }
    const stray = await touch('train', 'loose.png');
    const scan = await scanImageFolder(dir);
    expect(scan.layout).toBe('splits');
    expect(scan.drawn).toEqual([]);
    expect(scan.classes).toEqual(['cat', 'dog']);
    expect(countByLabel(scan.splits.train, 2)).toEqual([5, 5]);
    expect(countByLabel(scan.splits.val, 2)).toEqual([2, 2]);
    expect(countByLabel(scan.splits.test, 2)).toEqual([3, 3]);
    expect(scan.splits.test.every((e) => e.path.startsWith(join(dir, 'test')))).toBe(true);
    expect(scan.skipped).toEqual([{ path: stray, reason: 'not inside a class folder' }]);
  });

  it('draws a missing val from train (val / (train + val) of it)', async () => {
    await makeClass(['train'], 'cat', 18);
    await makeClass(['train'], 'dog', 9);
    await makeClass(['test'], 'cat', 2);
    await makeClass(['test'], 'dog', 2);
    const scan = await scanImageFolder(dir); // 0.8 / 0.1 / 0.1: val takes 1/9 of train/
    expect(scan.drawn).toEqual(['val']);
    expect(countByLabel(scan.splits.val, 2)).toEqual([2, 1]);
    expect(countByLabel(scan.splits.train, 2)).toEqual([16, 8]);
    expect(countByLabel(scan.splits.test, 2)).toEqual([2, 2]);
  });
});

describe('scanImageFolder errors', () => {
  it('a root that does not exist, is a file, or has no class folders', async () => {
    await expect(scanImageFolder(join(dir, 'nope'))).rejects.toThrow(
      `image folder ${join(dir, 'nope')} does not exist`,
    );
    const file = await touch('file.png');
    await expect(scanImageFolder(file)).rejects.toThrow(/is not a directory/);
    await expect(scanImageFolder(dir)).rejects.toThrow(`image folder ${dir} has no class folders`);
  });

  it('an empty class folder, or one with no images, names the folder', async () => {
    await makeClass([], 'a', 3);
    await mkdir(join(dir, 'b'));
    await expect(scanImageFolder(dir)).rejects.toThrow(
      `class folder ${join(dir, 'b')} has no images (it is empty)`,
    );
    await touch('b', 'readme.txt');
    await expect(scanImageFolder(dir)).rejects.toThrow(
      `class folder ${join(dir, 'b')} has no images (1 other file(s), e.g. ${join(dir, 'b', 'readme.txt')})`,
    );
  });

  it('a class in train but not in test (and the reverse) names class and folders', async () => {
    await makeClass(['train'], 'cat', 2);
    await makeClass(['train'], 'dog', 2);
    await makeClass(['test'], 'cat', 2);
    await expect(scanImageFolder(dir)).rejects.toThrow(
      `class "dog" is in ${join(dir, 'train')} but missing from ${join(dir, 'test')}`,
    );
    await makeClass(['test'], 'dog', 1);
    await makeClass(['val'], 'cat', 1);
    await makeClass(['val'], 'dog', 1);
    await makeClass(['val'], 'emu', 1);
    await expect(scanImageFolder(dir)).rejects.toThrow(
      `class "emu" is in ${join(dir, 'val')} but missing from ${join(dir, 'train')}`,
    );
  });

  it('split folders mixed with class folders, or no train folder', async () => {
    await makeClass(['train'], 'cat', 1);
    await makeClass([], 'dog', 1);
    await expect(scanImageFolder(dir)).rejects.toThrow(
      /mixes split folders \(train\) with other folders \(dog\)/,
    );
    const dir2 = join(dir, 'dog');
    await makeClass(['dog', 'test'], 'cat', 1);
    await expect(scanImageFolder(dir2)).rejects.toThrow(
      /mixes split folders \(test\) with no train folder/,
    );
  });

  it('fractions that do not sum to 1', async () => {
    await makeClass([], 'a', 3);
    await expect(
      scanImageFolder(dir, { fractions: { train: 0.8, val: 0.3, test: 0.1 } }),
    ).rejects.toThrow(/fractions must sum to 1/);
  });
});
