// Image fixtures for the tests in this folder, written with sharp into a
// temporary directory. Not exported from the package.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';

export async function makeTempDir(prefix = 'transferlab-images-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export interface RawPixels {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 2 | 3 | 4;
}

/** Every pixel the same value(s). */
export function solid(width: number, height: number, value: readonly number[]): RawPixels {
  const channels = value.length as RawPixels['channels'];
  const data = new Uint8Array(width * height * channels);
  for (let i = 0; i < width * height; i++) data.set(value, i * channels);
  return { data, width, height, channels };
}

/** RGB with r = 8·x, g = 8·y, b = 100 (x < 32, y < 32). */
export function gradient(width: number, height: number): RawPixels {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      data[o] = 8 * x;
      data[o + 1] = 8 * y;
      data[o + 2] = 100;
    }
  }
  return { data, width, height, channels: 3 };
}

/** Write `pixels` as PNG or JPEG (by the path's extension), creating folders. */
export async function writeImage(path: string, pixels: RawPixels, quality = 95): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const img = sharp(Buffer.from(pixels.data), {
    raw: { width: pixels.width, height: pixels.height, channels: pixels.channels },
  });
  const lower = path.toLowerCase();
  const out =
    lower.endsWith('.jpg') || lower.endsWith('.jpeg')
      ? img.jpeg({ quality, chromaSubsampling: '4:4:4' })
      : img.png();
  await out.toFile(path);
}

export async function writeText(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

/** Bytes that are no image format, under whatever name. */
export async function writeGarbage(path: string, length = 512): Promise<void> {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7919 + 13) % 251;
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
}

/** A real JPEG cut to 60% of its bytes. */
export async function writeTruncatedJpeg(path: string): Promise<void> {
  await writeImage(path, gradient(32, 32));
  const bytes = await readFile(path);
  await writeFile(path, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
}
