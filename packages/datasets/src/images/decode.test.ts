import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage, ImageDecodeError } from './decode.js';
import {
  gradient,
  makeTempDir,
  removeDir,
  solid,
  writeGarbage,
  writeImage,
  writeTruncatedJpeg,
} from './test-fixtures.js';

let dir: string;
const at = (name: string) => join(dir, name);

beforeAll(async () => {
  dir = await makeTempDir();
  await writeImage(at('orange.png'), solid(13, 7, [200, 100, 50]));
  await writeImage(at('orange.jpg'), solid(13, 7, [200, 100, 50]));
  await writeImage(at('gradient.png'), gradient(12, 9));
  await writeImage(at('gray.png'), solid(6, 5, [77]));
  await writeImage(at('gray-alpha.png'), solid(6, 5, [77, 128]));
  await writeImage(at('rgba.png'), solid(6, 5, [200, 100, 50, 64]));
  await writeImage(at('wide.png'), solid(40, 30, [10, 20, 30]));
  await writeGarbage(at('random.png'));
  await writeTruncatedJpeg(at('truncated.jpg'));
});
afterAll(async () => {
  await removeDir(dir);
});

function expectAll(data: Uint8Array, channels: number, value: readonly number[], tol = 0): void {
  for (let i = 0; i < data.length; i++) {
    const want = value[i % channels] as number;
    if (tol === 0) expect(data[i]).toBe(want);
    else expect(Math.abs((data[i] as number) - want)).toBeLessThanOrEqual(tol);
  }
}

describe('decodeImage', () => {
  it('PNG: exactly the colours written, at the stored size', async () => {
    const img = await decodeImage(at('orange.png'));
    expect([img.height, img.width, img.channels]).toEqual([7, 13, 3]);
    expectAll(img.data, 3, [200, 100, 50]);
    const g = await decodeImage(at('gradient.png'));
    const want = gradient(12, 9).data;
    expect(Array.from(g.data)).toEqual(Array.from(want));
  });

  it('JPEG: the colours written, within 3', async () => {
    const img = await decodeImage(at('orange.jpg'));
    expect([img.height, img.width]).toEqual([7, 13]);
    expectAll(img.data, 3, [200, 100, 50], 3);
  });

  it('grayscale: 1 channel as written, or repeated into RGB; RGB to gray by 601 luma', async () => {
    const one = await decodeImage(at('gray.png'), { channels: 1 });
    expect(one.channels).toBe(1);
    expect(one.data.length).toBe(30);
    expectAll(one.data, 1, [77]);
    const three = await decodeImage(at('gray.png'), { channels: 3 });
    expectAll(three.data, 3, [77, 77, 77]);
    const luma = await decodeImage(at('orange.png'), { channels: 1 });
    expectAll(luma.data, 1, [Math.round((299 * 200 + 587 * 100 + 114 * 50) / 1000)]); // 124
  });

  it("RGBA: 'drop' keeps the stored colour, 'black' composites onto black", async () => {
    const dropped = await decodeImage(at('rgba.png'));
    expect(dropped.channels).toBe(3);
    expectAll(dropped.data, 3, [200, 100, 50]);
    const black = await decodeImage(at('rgba.png'), { alpha: 'black' });
    expectAll(
      black.data,
      3,
      [(200 * 64) / 255, (100 * 64) / 255, (50 * 64) / 255].map(Math.round),
      1,
    );
    const ga = await decodeImage(at('gray-alpha.png'), { channels: 1, alpha: 'black' });
    expectAll(ga.data, 1, [Math.round((77 * 128) / 255)], 1);
    expectAll((await decodeImage(at('gray-alpha.png'), { channels: 1 })).data, 1, [77]);
  });

  it('resizes while decoding: stretch, shorter side, shorter side then centre crop', async () => {
    const s = await decodeImage(at('wide.png'), { size: [8, 9] });
    expect([s.height, s.width]).toEqual([8, 9]);
    expectAll(s.data, 3, [10, 20, 30], 1);
    const short = await decodeImage(at('wide.png'), { size: 15 });
    expect([short.height, short.width]).toEqual([15, 20]);
    const cover = await decodeImage(at('wide.png'), { size: [12, 12], resize: 'shorter-side' });
    expect([cover.height, cover.width]).toEqual([12, 12]);
    const square = await decodeImage(at('wide.png'), { size: 12, resize: 'stretch' });
    expect([square.height, square.width]).toEqual([12, 12]);
  });

  it('random bytes, a truncated JPEG and a missing file reject with ImageDecodeError', async () => {
    for (const [name, reason] of [
      ['random.png', /unsupported image format/],
      ['truncated.jpg', /premature end of JPEG/],
      ['missing.png', /missing/],
    ] as const) {
      const err = await decodeImage(at(name)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImageDecodeError);
      expect((err as ImageDecodeError).path).toBe(at(name));
      expect((err as ImageDecodeError).reason).toMatch(reason);
    }
  });

  it('bad options are plain errors', async () => {
    await expect(decodeImage(at('orange.png'), { channels: 4 as 3 })).rejects.toThrow(
      /channels must be 1 or 3/,
    );
    await expect(decodeImage(at('orange.png'), { size: [0, 3] })).rejects.toThrow(/size must be/);
  });
});
