// Image folders for the fit/predict tests: real PNG and JPEG files of
// coloured shapes, written with sharp into a temporary directory.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { createRng, type Rng } from '@transferlab/core';

// sharp is a dependency of @transferlab/datasets, not of the bench: load it from there.
interface SharpImage {
  png(): SharpImage;
  jpeg(o: { quality: number }): SharpImage;
  toFile(path: string): Promise<unknown>;
}
type Sharp = (
  input: Buffer,
  opts: { raw: { width: number; height: number; channels: 1 | 3 | 4 } },
) => SharpImage;
const datasetsDir = join(dirname(fileURLToPath(import.meta.url)), '../../../../packages/datasets/');
const sharp = createRequire(join(datasetsDir, 'package.json'))('sharp') as Sharp;

export const SHAPE_CLASSES = ['circle', 'square', 'triangle'] as const;

/**
 * One image of `shape` on a noisy background: side 28–40 px, the shape's
 * centre and size jittered, its colour random (the same for every class).
 * RGB, or RGBA for some files.
 */
function drawShape(
  shape: (typeof SHAPE_CLASSES)[number],
  rng: Rng,
  alpha: boolean,
  fixedSide?: number,
): { data: Uint8Array; width: number; height: number; channels: 3 | 4 } {
  const side = fixedSide ?? 28 + rng.int(13);
  const channels = alpha ? 4 : 3;
  const data = new Uint8Array(side * side * channels);
  const cx = side / 2 + (rng.next() - 0.5) * 6;
  const cy = side / 2 + (rng.next() - 0.5) * 6;
  const r = side * (0.25 + 0.1 * rng.next());
  // Any saturated colour, whatever the class: the shape is what tells classes apart.
  const bright = 170 + rng.int(80);
  const colour = [bright, 20 + rng.int(60), rng.int(bright)];
  rng.shuffle(colour);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      let inside: boolean;
      if (shape === 'circle') inside = dx * dx + dy * dy <= r * r;
      else if (shape === 'square') inside = Math.abs(dx) <= r * 0.85 && Math.abs(dy) <= r * 0.85;
      else inside = dy <= r * 0.8 && dy >= -r && Math.abs(dx) <= ((dy + r) / 1.8) * 1.15;
      const o = (y * side + x) * channels;
      for (let c = 0; c < 3; c++) {
        const noise = 110 + (rng.next() - 0.5) * 60;
        data[o + c] = inside ? (colour[c] as number) : Math.round(noise);
      }
      if (alpha) data[o + 3] = 255;
    }
  }
  return { data, width: side, height: side, channels };
}

async function writeShape(path: string, img: ReturnType<typeof drawShape>): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const s = sharp(Buffer.from(img.data), {
    raw: { width: img.width, height: img.height, channels: img.channels },
  });
  await (path.endsWith('.jpg') ? s.jpeg({ quality: 92 }) : s.png()).toFile(path);
}

export async function makeTempDir(prefix = 'transferlab-fit-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export interface ShapeFolder {
  root: string;
  /** A truncated JPEG (in test/square) and a text file (in train/circle). */
  corrupt: string;
  stray: string;
  /** Test images per class, as written (the corrupt one not included). */
  testImages: { path: string; label: number }[];
}

/**
 * root/train|val|test/<circle|square|triangle>/…, `perClass` images per class
 * and split; every third file a JPEG, every fifth an RGBA PNG. Plus (with
 * `badFiles`) a truncated JPEG in test/square and a text file in train/circle.
 */
export async function makeShapeFolder(
  root: string,
  perClass: { train: number; val: number; test: number },
  seed = 7,
  badFiles = true,
): Promise<ShapeFolder> {
  const rng = createRng(seed);
  const testImages: { path: string; label: number }[] = [];
  for (const split of ['train', 'val', 'test'] as const) {
    for (const [label, shape] of SHAPE_CLASSES.entries()) {
      for (let i = 0; i < perClass[split]; i++) {
        const ext = i % 3 === 2 ? 'jpg' : 'png';
        const path = join(root, split, shape, `${shape}-${i}.${ext}`);
        await writeShape(
          path,
          drawShape(shape, rng.derive(`${split}/${shape}/${i}`), ext === 'png' && i % 5 === 4),
        );
        if (split === 'test') testImages.push({ path, label });
      }
    }
  }
  const corrupt = join(root, 'test', 'square', 'broken.jpg');
  const stray = join(root, 'train', 'circle', 'notes.txt');
  if (badFiles) {
    await writeShape(corrupt, drawShape('square', rng.derive('broken'), false));
    const bytes = await readFile(corrupt);
    await writeFile(corrupt, bytes.subarray(0, Math.floor(bytes.length * 0.5)));
    await writeFile(stray, 'not an image\n');
  }
  return { root, corrupt, stray, testImages };
}

/** A flat folder with one empty class folder. */
export async function makeFolderWithEmptyClass(root: string): Promise<void> {
  const rng = createRng(1);
  for (let i = 0; i < 4; i++)
    await writeShape(join(root, 'circle', `c${i}.png`), drawShape('circle', rng.derive(i), false));
  await mkdir(join(root, 'square'), { recursive: true });
}

/** A ustar archive of regular files (name ≤ 100 bytes), as `tar cf` writes one. */
function tar(files: readonly { name: string; data: Uint8Array }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const f of files) {
    const h = Buffer.alloc(512);
    h.write(f.name, 0, 100, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(`${f.data.length.toString(8).padStart(11, '0')}\0`, 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148); // checksum field counts as spaces
    h.write('0', 156);
    h.write('ustar\0' + '00', 257, 'latin1');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    blocks.push(h, Buffer.from(f.data), Buffer.alloc((512 - (f.data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/**
 * cifar-10-binary.tar.gz in CIFAR-10's own format (1 label byte, then the
 * R, G and B planes of a 32×32 image per record; five data batches, a test
 * batch, batches.meta.txt), holding 32×32 shapes of the three classes.
 */
export async function makeShapeCifarArchive(
  path: string,
  perClass: { train: number; test: number },
  seed = 11,
): Promise<{ name: string; sha256: string; testLabels: number[] }> {
  const rng = createRng(seed);
  const record = (label: number, key: string) => {
    const img = drawShape(
      SHAPE_CLASSES[label] as (typeof SHAPE_CLASSES)[number],
      rng.derive(key),
      false,
      32,
    );
    const rec = new Uint8Array(1 + 3072);
    rec[0] = label;
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < 1024; p++) rec[1 + c * 1024 + p] = img.data[p * 3 + c] as number;
    return rec;
  };
  const train: Uint8Array[] = [];
  for (let i = 0; i < perClass.train; i++)
    for (let label = 0; label < 3; label++) train.push(record(label, `train/${label}/${i}`));
  const testLabels: number[] = [];
  const test: Uint8Array[] = [];
  for (let i = 0; i < perClass.test; i++)
    for (let label = 0; label < 3; label++) {
      test.push(record(label, `test/${label}/${i}`));
      testLabels.push(label);
    }
  const dir = 'cifar-10-batches-bin';
  const per = Math.ceil(train.length / 5);
  const files = [1, 2, 3, 4, 5].map((b) => ({
    name: `${dir}/data_batch_${b}.bin`,
    data: Buffer.concat(train.slice((b - 1) * per, b * per)),
  }));
  files.push({ name: `${dir}/test_batch.bin`, data: Buffer.concat(test) });
  files.push({
    name: `${dir}/batches.meta.txt`,
    data: Buffer.from(`${SHAPE_CLASSES.join('\n')}\n\n`),
  });
  const archive = gzipSync(tar(files));
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, archive);
  return {
    name: 'cifar-10-binary.tar.gz',
    sha256: createHash('sha256').update(archive).digest('hex'),
    testLabels,
  };
}
