import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import {
  applyTransforms,
  centerCropBox,
  IMAGENET_MEAN,
  IMAGENET_STD,
  imagenetEvalTransforms,
  imagenetTrainTransforms,
  parseTransforms,
  sampleResizedCropBox,
  type TransformStep,
  transformedSize,
} from './augment.js';
import type { PixelImage } from './resample.js';

function randomImage(height: number, width: number, channels: number, seed = 1): PixelImage {
  const rng = createRng(seed);
  const data = new Uint8Array(height * width * channels);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(256);
  return { data, height, width, channels };
}

function px(img: PixelImage, r: number, c: number, k: number): number {
  return img.data[(r * img.width + c) * img.channels + k] as number;
}

describe('parseTransforms', () => {
  it('round-trips the presets through JSON', () => {
    for (const steps of [imagenetTrainTransforms(), imagenetEvalTransforms()]) {
      expect(parseTransforms(JSON.parse(JSON.stringify(steps)))).toEqual(steps);
    }
    expect(imagenetEvalTransforms()).toEqual([
      { op: 'resize', size: 256 },
      { op: 'centerCrop', size: 224 },
      { op: 'normalize', preset: 'imagenet' },
    ]);
  });

  it('names the step and the fault', () => {
    expect(() => parseTransforms([{ op: 'rotate' }])).toThrow(/step 0: unknown op "rotate"/);
    expect(() => parseTransforms([{ op: 'resize', size: 8, mode: 'x' }])).toThrow(
      /step 0 \(resize\): unknown key\(s\) mode/,
    );
    expect(() => parseTransforms([{ op: 'centerCrop', size: [8, 0] }])).toThrow(/size must be/);
    expect(() =>
      parseTransforms([{ op: 'normalize', preset: 'imagenet' }, { op: 'horizontalFlip' }]),
    ).toThrow(/step 1 \(horizontalFlip\): normalize must be the last step/);
    expect(() =>
      parseTransforms([{ op: 'randomResizedCrop', size: 8, scale: [0.5, 1.5] }]),
    ).toThrow(/scale must not exceed 1/);
    expect(() => parseTransforms([{ op: 'horizontalFlip', p: 2 }])).toThrow(/p must be/);
    expect(() => parseTransforms([{ op: 'normalize', mean: [0.5, 0.5], std: [1] }])).toThrow(
      /mean has 2 values, std has 1/,
    );
    expect(() => parseTransforms([{ op: 'normalize', preset: 'coco' }])).toThrow(/unknown preset/);
    expect(() => parseTransforms({ op: 'resize' })).toThrow(/must be an array/);
  });
});

describe('normalize and scaling', () => {
  it('imagenet: (v/255 − mean)/std per channel', () => {
    const img = randomImage(5, 4, 3);
    const out = applyTransforms([{ op: 'normalize', preset: 'imagenet' }], img);
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    expect(IMAGENET_MEAN).toEqual(mean);
    expect(IMAGENET_STD).toEqual(std);
    for (let r = 0; r < 5; r++)
      for (let c = 0; c < 4; c++)
        for (let k = 0; k < 3; k++) {
          const want = (px(img, r, c, k) / 255 - (mean[k] as number)) / (std[k] as number);
          expect(out.data[(r * 4 + c) * 3 + k]).toBeCloseTo(want, 6);
        }
  });

  it('custom mean/std, one value broadcast; no normalize gives v/255', () => {
    const img = randomImage(3, 3, 1, 2);
    const out = applyTransforms([{ op: 'normalize', mean: [0.5], std: [0.25] }], img);
    const plain = applyTransforms([], img);
    for (let i = 0; i < 9; i++) {
      const v = img.data[i] as number;
      expect(out.data[i]).toBeCloseTo((v / 255 - 0.5) / 0.25, 6);
      expect(plain.data[i]).toBe(Math.fround(v / 255));
    }
  });

  it('refuses the 3-channel preset on a gray image', () => {
    expect(() =>
      applyTransforms([{ op: 'normalize', preset: 'imagenet' }], randomImage(2, 2, 1)),
    ).toThrow(/3 values, but the image has 1 channel/);
  });
});

describe('horizontalFlip', () => {
  it('p = 1 reverses the columns exactly; p = 0 changes nothing', () => {
    const img = randomImage(4, 7, 3);
    const rng = createRng(0);
    const flipped = applyTransforms([{ op: 'horizontalFlip', p: 1 }], img, rng);
    const same = applyTransforms([{ op: 'horizontalFlip', p: 0 }], img, rng);
    for (let r = 0; r < 4; r++)
      for (let c = 0; c < 7; c++)
        for (let k = 0; k < 3; k++) {
          expect(flipped.data[(r * 7 + c) * 3 + k]).toBe(Math.fround(px(img, r, 6 - c, k) / 255));
          expect(same.data[(r * 7 + c) * 3 + k]).toBe(Math.fround(px(img, r, c, k) / 255));
        }
  });

  it('p = 0.5 flips about half the time', () => {
    const img = randomImage(1, 2, 1);
    const rng = createRng(3);
    let flips = 0;
    for (let i = 0; i < 2000; i++) {
      const out = applyTransforms([{ op: 'horizontalFlip' }], img, rng);
      if (out.data[0] === Math.fround(px(img, 0, 1, 0) / 255)) flips++;
    }
    expect(px(img, 0, 0, 0)).not.toBe(px(img, 0, 1, 0));
    expect(flips / 2000).toBeGreaterThan(0.45);
    expect(flips / 2000).toBeLessThan(0.55);
  });

  it('a random step without an rng is an error', () => {
    expect(() => applyTransforms([{ op: 'horizontalFlip' }], randomImage(2, 2, 1))).toThrow(
      /needs an rng/,
    );
  });
});

describe('randomResizedCrop', () => {
  it('crop areas and aspect ratios stay in range over many draws', () => {
    const H = 120;
    const W = 160;
    for (const scale of [
      [0.08, 1],
      [0.5, 0.6],
    ] as const) {
      const rng = createRng(11);
      let minFrac = 1;
      let maxFrac = 0;
      const faults: string[] = [];
      for (let i = 0; i < 3000; i++) {
        const box = sampleResizedCropBox(H, W, rng, scale);
        const inside =
          box.top >= 0 && box.left >= 0 && box.top + box.height <= H && box.left + box.width <= W;
        // Rounding each side moves the area by at most (w + h)/2 + 1/4 pixels.
        const slack = ((box.width + box.height) / 2 + 0.25) / (H * W);
        const frac = (box.width * box.height) / (H * W);
        const aspect = box.width / box.height;
        const aspectLo = (3 / 4) * (1 - 1 / box.width) * (1 - 1 / box.height);
        const aspectHi = (4 / 3) * (1 + 1 / box.width) * (1 + 1 / box.height);
        if (
          !inside ||
          frac < scale[0] - slack ||
          frac > scale[1] + slack ||
          aspect < aspectLo ||
          aspect > aspectHi
        )
          faults.push(JSON.stringify(box));
        minFrac = Math.min(minFrac, frac);
        maxFrac = Math.max(maxFrac, frac);
      }
      expect(faults).toEqual([]);
      // The draws cover the range, not one corner of it.
      expect(minFrac).toBeLessThan(scale[0] + 0.1 * (scale[1] - scale[0]));
      expect(maxFrac).toBeGreaterThan(scale[1] - 0.2 * (scale[1] - scale[0]));
    }
  });

  it('falls back to the central crop of the widest allowed aspect', () => {
    // No 10×(≥900) box can have aspect ≤ 4/3, so every draw fails.
    const box = sampleResizedCropBox(10, 1000, createRng(0), [0.9, 1]);
    expect(box).toEqual({ top: 0, left: Math.floor((1000 - 13) / 2), height: 10, width: 13 });
  });

  it('outputs the requested size; one seed, one result; another seed, another', () => {
    const img = randomImage(40, 50, 3);
    const steps: TransformStep[] = [
      { op: 'randomResizedCrop', size: [16, 12] },
      { op: 'horizontalFlip' },
      { op: 'normalize', preset: 'imagenet' },
    ];
    const a = applyTransforms(steps, img, createRng(5));
    const b = applyTransforms(steps, img, createRng(5));
    const c = applyTransforms(steps, img, createRng(6));
    expect([a.height, a.width, a.channels]).toEqual([16, 12, 3]);
    expect(a.data).toEqual(b.data);
    expect(a.data).not.toEqual(c.data);
  });
});

describe('centerCrop and resize', () => {
  it('centerCrop copies the central pixels (offsets rounded half to even)', () => {
    const img = randomImage(7, 9, 1);
    expect(centerCropBox(7, 9, [3, 4])).toEqual({ top: 2, left: 2, height: 3, width: 4 });
    expect(centerCropBox(8, 8, [3, 3])).toEqual({ top: 2, left: 2, height: 3, width: 3 }); // 2.5 → 2
    expect(centerCropBox(10, 10, [3, 3])).toEqual({ top: 4, left: 4, height: 3, width: 3 }); // 3.5 → 4
    const out = applyTransforms([{ op: 'centerCrop', size: [3, 4] }], img);
    for (let r = 0; r < 3; r++)
      for (let c = 0; c < 4; c++)
        expect(out.data[r * 4 + c]).toBe(Math.fround(px(img, r + 2, c + 2, 0) / 255));
  });

  it('centerCrop larger than the image pads with 0 as torchvision', () => {
    const img: PixelImage = {
      data: new Uint8Array(4 * 4).fill(255),
      height: 4,
      width: 4,
      channels: 1,
    };
    const out = applyTransforms([{ op: 'centerCrop', size: [7, 4] }], img);
    // Pad (7 − 4) // 2 = 1 row on top, 2 below.
    const rows = Array.from({ length: 7 }, (_, r) => out.data[r * 4]);
    expect(rows).toEqual([0, 1, 1, 1, 1, 0, 0]);
  });

  it('resize: same size is the identity, a constant stays constant, a ramp stays a ramp', () => {
    const img = randomImage(6, 5, 3);
    expect(applyTransforms([{ op: 'resize', size: [6, 5] }], img).data).toEqual(
      applyTransforms([], img).data,
    );
    const flat: PixelImage = {
      data: new Uint8Array(9 * 13).fill(200),
      height: 9,
      width: 13,
      channels: 1,
    };
    for (const size of [[4, 5] as const, [20, 31] as const]) {
      const out = applyTransforms([{ op: 'resize', size }], flat);
      for (const v of out.data) expect(v).toBeCloseTo(200 / 255, 6);
    }
    // Columns valued 10·x; halving the width averages symmetric windows around
    // source position 2o + 1, i.e. 10·(2o + 0.5) away from the borders.
    const ramp = new Uint8Array(2 * 16);
    for (let r = 0; r < 2; r++) for (let x = 0; x < 16; x++) ramp[r * 16 + x] = 10 * x;
    const half = applyTransforms([{ op: 'resize', size: [2, 8] }], {
      data: ramp,
      height: 2,
      width: 16,
      channels: 1,
    });
    for (let o = 1; o < 7; o++) expect((half.data[o] as number) * 255).toBeCloseTo(20 * o + 5, 3);
  });

  it('resize n scales the shorter side; transformedSize predicts every output size', () => {
    const img = randomImage(20, 45, 1);
    const out = applyTransforms([{ op: 'resize', size: 10 }], img);
    expect([out.height, out.width]).toEqual([10, 22]);
    expect(transformedSize([{ op: 'resize', size: 10 }], [20, 45])).toEqual([10, 22]);
    expect(transformedSize([{ op: 'resize', size: 10 }])).toBeUndefined();
    expect(transformedSize(imagenetEvalTransforms())).toEqual([224, 224]);
    expect(transformedSize([{ op: 'horizontalFlip' }], [5, 6])).toEqual([5, 6]);
  });
});
