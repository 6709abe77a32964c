import { readdir, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { createRng } from '@transferlab/core';
import { type SplitSize, stratifiedSplitIndices } from '../transforms.js';
import type { Dataset } from '../types.js';

// torchvision's ImageFolder layout, listed without decoding anything:
//   root/<class>/<image>                       (one pool, split here by seed)
//   root/train/<class>/<image>, root/val/…, root/test/…   (splits on disk)

export type ImageSplit = 'train' | 'val' | 'test';

/** One image: its path and its class index (position in `classes`). */
export interface ImageEntry {
  readonly path: string;
  readonly label: number;
}

/** A file that is not used, and why. */
export interface SkippedFile {
  readonly path: string;
  readonly reason: string;
}

export interface ImageFolderScan {
  readonly root: string;
  /** 'splits': train/ (val/, test/) on disk; 'flat': one pool split by seed. */
  readonly layout: 'splits' | 'flat';
  /** Class names sorted by code point (as Python's `sorted`); index = label. */
  readonly classes: readonly string[];
  readonly splits: Readonly<Record<ImageSplit, readonly ImageEntry[]>>;
  /** Which splits were drawn from train (or the pool) by the seeded split. */
  readonly drawn: readonly ImageSplit[];
  /** Non-image files and files outside any class folder. Hidden files are not listed. */
  readonly skipped: readonly SkippedFile[];
  /** E.g. a class too small to appear in a drawn split. */
  readonly warnings: readonly string[];
}

export interface ScanImageFolderOptions {
  /** Seed of the stratified split (default 0). */
  readonly seed?: number;
  /**
   * Fractions of each class for the splits drawn by seed (default
   * 0.8 / 0.1 / 0.1; must sum to 1, val or test may be 0). When train/ and
   * test/ exist but no val/, val takes val / (train + val) of train/; and so on.
   */
  readonly fractions?: Readonly<Record<ImageSplit, number>>;
  /** Extensions taken as images, lower case with the dot (default `IMAGE_EXTENSIONS`). */
  readonly extensions?: readonly string[];
}

/** What sharp's bundled libvips decodes (BMP and PPM are not among them). */
export const IMAGE_EXTENSIONS: readonly string[] = [
  '.jpg',
  '.jpeg',
  '.jpe',
  '.png',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
];

/** Folder names read as splits; anything else in root is a class. */
const SPLIT_DIRS: ReadonlyMap<string, ImageSplit> = new Map<string, ImageSplit>([
  ['train', 'train'],
  ['val', 'val'],
  ['valid', 'val'],
  ['validation', 'val'],
  ['test', 'test'],
]);

const DEFAULT_FRACTIONS: Record<ImageSplit, number> = { train: 0.8, val: 0.1, test: 0.1 };

/** Python's string order (code points), which differs from UTF-16 order past U+FFFF. */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done ? (y.done ? 0 : -1) : 1;
    const d = (x.value.codePointAt(0) as number) - (y.value.codePointAt(0) as number);
    if (d !== 0) return d;
  }
}

interface Listing {
  readonly dirs: string[];
  readonly files: string[];
}

// Sorted, hidden names dropped; symlinks followed.
async function list(dir: string): Promise<Listing> {
  const entries = await readdir(dir, { withFileTypes: true });
  const dirs: string[] = [];
  const files: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      const s = await stat(join(dir, e.name)).catch(() => undefined);
      isDir = s?.isDirectory() ?? false;
      isFile = s?.isFile() ?? false;
    }
    if (isDir) dirs.push(e.name);
    else if (isFile) files.push(e.name);
  }
  dirs.sort(compareCodePoints);
  files.sort(compareCodePoints);
  return { dirs, files };
}

// Every image under a class folder (nested folders included, as torchvision).
async function listClass(
  dir: string,
  exts: ReadonlySet<string>,
  images: string[],
  skipped: SkippedFile[],
): Promise<void> {
  const { dirs, files } = await list(dir);
  for (const f of files) {
    const path = join(dir, f);
    const ext = extname(f).toLowerCase();
    if (exts.has(ext)) images.push(path);
    else
      skipped.push({
        path,
        reason: ext ? `not an image file (extension "${ext}")` : 'not an image file (no extension)',
      });
  }
  for (const d of dirs) await listClass(join(dir, d), exts, images, skipped);
}

interface SplitListing {
  readonly classes: Map<string, string[]>;
}

async function listSplit(
  dir: string,
  exts: ReadonlySet<string>,
  skipped: SkippedFile[],
  what: string,
): Promise<SplitListing> {
  const { dirs, files } = await list(dir);
  for (const f of files) skipped.push({ path: join(dir, f), reason: 'not inside a class folder' });
  if (dirs.length === 0) {
    throw new Error(
      `image folder ${what} has no class folders: expected ${join(dir, '<class>', '<image>')}`,
    );
  }
  const classes = new Map<string, string[]>();
  for (const name of dirs) {
    const classDir = join(dir, name);
    const images: string[] = [];
    const before = skipped.length;
    await listClass(classDir, exts, images, skipped);
    if (images.length === 0) {
      const others = skipped.length - before;
      throw new Error(
        `image folder: class folder ${classDir} has no images` +
          (others > 0
            ? ` (${others} other file(s), e.g. ${skipped[before]?.path})`
            : ' (it is empty)') +
          '; add images or remove the folder',
      );
    }
    classes.set(name, images);
  }
  return { classes };
}

function checkFractions(f: Readonly<Record<ImageSplit, number>>): void {
  for (const k of ['train', 'val', 'test'] as const) {
    const v = f[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1)
      throw new Error(`scanImageFolder: fractions.${k} must be in [0, 1], got ${v}`);
  }
  if (!(f.train > 0)) throw new Error('scanImageFolder: fractions.train must be > 0');
  const sum = f.train + f.val + f.test;
  if (Math.abs(sum - 1) > 1e-9)
    throw new Error(
      `scanImageFolder: fractions must sum to 1, got ${f.train} + ${f.val} + ${f.test} = ${sum}`,
    );
}

/**
 * List an image folder: class names (sorted; index = label), the entries of
 * train / val / test, and the files not used. Decodes nothing.
 *
 * Layout: if root holds a `train` folder, its sub-folders must all be split
 * folders (`train`, `val` | `valid` | `validation`, `test`), each with the same
 * class folders; a missing val or test is drawn from train by a seeded
 * stratified split. Otherwise every sub-folder of root is a class, and the
 * three splits are drawn from the pool. Files inside a class folder's
 * sub-folders belong to the class. Names starting with '.' are ignored.
 *
 * Throws (naming the path) when root is missing or not a folder, has no class
 * folders, a class folder has no images (an empty class would shift every
 * label after it), a class is in one split folder but not another, or root
 * mixes split folders with other folders.
 */
export async function scanImageFolder(
  root: string,
  opts: ScanImageFolderOptions = {},
): Promise<ImageFolderScan> {
  const absRoot = resolve(root);
  const fractions = opts.fractions ?? DEFAULT_FRACTIONS;
  checkFractions(fractions);
  const exts = new Set((opts.extensions ?? IMAGE_EXTENSIONS).map((e) => e.toLowerCase()));
  const st = await stat(absRoot).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new Error(`image folder ${absRoot} does not exist`);
    throw new Error(`image folder ${absRoot} cannot be read: ${err.message}`);
  });
  if (!st.isDirectory()) throw new Error(`image folder ${absRoot} is not a directory`);

  const skipped: SkippedFile[] = [];
  const warnings: string[] = [];
  const top = await list(absRoot);
  const splitDirs = top.dirs.filter((d) => SPLIT_DIRS.has(d));
  const onDisk = new Map<ImageSplit, SplitListing>();
  let layout: 'splits' | 'flat';
  if (splitDirs.length > 0) {
    const others = top.dirs.filter((d) => !SPLIT_DIRS.has(d));
    if (!splitDirs.includes('train') || others.length > 0) {
      throw new Error(
        `image folder ${absRoot} mixes split folders (${splitDirs.join(', ')}) with ` +
          (others.length > 0 ? `other folders (${others.join(', ')})` : 'no train folder') +
          `: use root/train/<class>/… (with optional val/ and test/), or root/<class>/… with no folder named ${[...SPLIT_DIRS.keys()].join(', ')}`,
      );
    }
    for (const f of top.files)
      skipped.push({ path: join(absRoot, f), reason: 'not inside a split folder' });
    for (const d of splitDirs) {
      const split = SPLIT_DIRS.get(d) as ImageSplit;
      if (onDisk.has(split))
        throw new Error(
          `image folder ${absRoot} has two folders for the ${split} split (${splitDirs.join(', ')})`,
        );
      onDisk.set(split, await listSplit(join(absRoot, d), exts, skipped, join(absRoot, d)));
    }
    layout = 'splits';
  } else {
    if (top.dirs.length === 0) {
      throw new Error(
        `image folder ${absRoot} has no class folders: expected ${absRoot}/<class>/<image> or ${absRoot}/train/<class>/<image>`,
      );
    }
    onDisk.set('train', await listSplit(absRoot, exts, skipped, absRoot));
    layout = 'flat';
  }

  const dirName = (split: ImageSplit) =>
    layout === 'flat'
      ? absRoot
      : join(absRoot, splitDirs.find((d) => SPLIT_DIRS.get(d) === split) as string);
  const train = onDisk.get('train') as SplitListing;
  const classes = [...train.classes.keys()];
  const mismatches: string[] = [];
  for (const [split, listing] of onDisk) {
    if (split === 'train') continue;
    for (const c of classes)
      if (!listing.classes.has(c))
        mismatches.push(
          `class "${c}" is in ${dirName('train')} but missing from ${dirName(split)}`,
        );
    for (const c of listing.classes.keys())
      if (!train.classes.has(c))
        mismatches.push(
          `class "${c}" is in ${dirName(split)} but missing from ${dirName('train')}`,
        );
  }
  if (mismatches.length > 0)
    throw new Error(
      `image folder ${absRoot}: the split folders disagree on classes: ${mismatches.join('; ')}`,
    );

  const entriesOf = (listing: SplitListing): ImageEntry[] =>
    classes.flatMap((c, label) =>
      (listing.classes.get(c) as string[]).map((path) => ({ path, label })),
    );

  const splits: Record<ImageSplit, ImageEntry[]> = { train: [], val: [], test: [] };
  const drawn = (['val', 'test'] as const).filter((s) => !onDisk.has(s) && fractions[s] > 0);
  for (const [split, listing] of onDisk) splits[split] = entriesOf(listing);
  if (drawn.length > 0) {
    const pool = splits.train;
    // Fractions relative to what train/ (or the pool) has to share.
    const share = fractions.train + drawn.reduce((s, d) => s + fractions[d], 0);
    const sizes: Partial<Record<ImageSplit, SplitSize>> = { train: 'rest' };
    for (const d of drawn) sizes[d] = fractions[d] / share;
    const labels: Dataset = {
      name: `image folder ${absRoot}`,
      x: new Float32Array(0),
      y: Int32Array.from(pool, (e) => e.label),
      shape: [0],
      numClasses: classes.length,
      classNames: classes,
    };
    const rng = createRng(opts.seed ?? 0).derive('image-folder-split');
    const idx = stratifiedSplitIndices(
      labels,
      sizes as Record<ImageSplit, SplitSize>,
      rng,
      'scanImageFolder',
    );
    for (const split of ['train', ...drawn] as const) {
      splits[split] = Array.from(idx[split] as Int32Array, (i) => pool[i] as ImageEntry);
      const present = new Set(splits[split].map((e) => e.label));
      const absent = classes.filter((_, c) => !present.has(c));
      if (absent.length > 0) {
        warnings.push(
          `the ${split} split drawn from ${dirName('train')} has no images of class(es) ${absent.map((c) => `"${c}"`).join(', ')} (too few images for fraction ${fractions[split]})`,
        );
      }
    }
  }
  return { root: absRoot, layout, classes, splits, drawn, skipped, warnings };
}
