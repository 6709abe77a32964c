/**
 * A folder of product photos for photos.test.ts: Fashion-MNIST's classes
 * 5–9 written as a user's ImageFolder would look (see that test for why).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRng } from '@transferlab/core';
import { FASHION_MNIST_CLASS_NAMES, FASHION_MNIST_FILES, parseIdx } from '@transferlab/datasets';
import { loadSharp } from './sharp.js';

/** Fashion-MNIST labels 5–9; the backbone saw only 0–4. */
export const TARGET_LABELS = [5, 6, 7, 8, 9];
const folderName = (label: number) =>
  (FASHION_MNIST_CLASS_NAMES[label] as string).toLowerCase().replace(/[^a-z]+/g, '-');
export const PER_CLASS = { train: 40, val: 10, test: 20 } as const;

export interface PhotoFolder {
  root: string;
  classes: string[];
  corrupt: string;
  stray: string;
  /** Test photos (the corrupt one not included), in the order fit's scan lists them. */
  testImages: { path: string; label: number }[];
}

/** First `count` images of each target label of one IDX split, as 28×28 grey bytes. */
async function fashionImages(fashionDir: string, split: 'train' | 'test', count: number) {
  const files = FASHION_MNIST_FILES[split];
  const images = parseIdx(await readFile(join(fashionDir, files.images)), files.images);
  const labels = parseIdx(await readFile(join(fashionDir, files.labels)), files.labels);
  const out = new Map<number, Uint8Array[]>(TARGET_LABELS.map((l) => [l, []]));
  for (let i = 0; i < labels.data.length; i++) {
    const list = out.get(labels.data[i] as number);
    if (list && list.length < count) list.push(images.data.subarray(i * 784, (i + 1) * 784));
  }
  return out;
}

/**
 * root/train|val|test/<class>/…: train and val from Fashion-MNIST's training
 * file, test from its t10k file. Each photo is upscaled to 28–64 px
 * (Lanczos), every other one a JPEG (quality 80–95), every third one RGB
 * with a colour cast, the rest grey.
 */
export async function makePhotoFolder(root: string, fashionDir: string): Promise<PhotoFolder> {
  const sharp = loadSharp();
  const rng = createRng(13);
  const train = await fashionImages(fashionDir, 'train', PER_CLASS.train + PER_CLASS.val);
  const test = await fashionImages(fashionDir, 'test', PER_CLASS.test);
  const testImages: { path: string; label: number }[] = [];
  const writes: Promise<unknown>[] = [];
  for (const split of ['train', 'val', 'test'] as const) {
    for (const [index, label] of TARGET_LABELS.entries()) {
      const pool = split === 'test' ? test : train;
      const first = split === 'val' ? PER_CLASS.train : 0;
      const className = folderName(label);
      await mkdir(join(root, split, className), { recursive: true });
      for (let i = 0; i < PER_CLASS[split]; i++) {
        const grey = (pool.get(label) as Uint8Array[])[first + i] as Uint8Array;
        const r = rng.derive(`${split}/${label}/${i}`);
        const side = 28 + r.int(37);
        const rgb = i % 3 === 0;
        let pixels: Uint8Array = grey;
        if (rgb) {
          const cast = [0.75 + 0.25 * r.next(), 0.75 + 0.25 * r.next(), 0.75 + 0.25 * r.next()];
          pixels = new Uint8Array(784 * 3);
          for (let p = 0; p < 784; p++)
            for (let c = 0; c < 3; c++)
              pixels[p * 3 + c] = Math.round((grey[p] as number) * (cast[c] as number));
        }
        const jpeg = i % 2 === 0;
        const path = join(root, split, className, `${className}-${i}.${jpeg ? 'jpg' : 'png'}`);
        const image = sharp(Buffer.from(pixels), {
          raw: { width: 28, height: 28, channels: rgb ? 3 : 1 },
        }).resize(side, side, { kernel: 'lanczos3' });
        writes.push((jpeg ? image.jpeg({ quality: 80 + r.int(16) }) : image.png()).toFile(path));
        if (split === 'test') testImages.push({ path, label: index });
      }
    }
  }
  await Promise.all(writes);
  // A JPEG cut in half, as a failed copy leaves one, and a note someone left in a class folder.
  const corrupt = join(root, 'test', folderName(8), 'broken.jpg');
  const whole = await sharp(Buffer.from((test.get(8) as Uint8Array[])[0] as Uint8Array), {
    raw: { width: 28, height: 28, channels: 1 },
  })
    .resize(48, 48)
    .jpeg({ quality: 90 })
    .toBuffer();
  await writeFile(corrupt, whole.subarray(0, Math.floor(whole.length / 2)));
  const stray = join(root, 'train', folderName(6), 'notes.txt');
  await writeFile(stray, 'shirts from the spring catalogue\n');
  const classes = TARGET_LABELS.map(folderName).sort();
  // fit's classes are the sorted folder names: relabel, and list the test photos in scan order.
  const byName = TARGET_LABELS.map((l) => classes.indexOf(folderName(l)));
  const relabelled = testImages.map((t) => ({ path: t.path, label: byName[t.label] as number }));
  relabelled.sort((a, b) => a.label - b.label || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { root, classes, corrupt, stray, testImages: relabelled };
}
