import type { Rng } from '@transferlab/core';
import {
  type CropBox,
  checkImage,
  crop,
  flipHorizontal,
  type PixelImage,
  resizeRegion,
} from './resample.js';

// Preprocessing and augmentation as data: a list of plain JSON objects that
// can be stored with a model and replayed at inference.
//
// Where each step runs: `decodeImage` (sharp) decodes the file and optionally
// pre-resizes it; every step below then runs in JS on the decoded pixels
// (0–255, HWC), so results are identical on every platform and libvips build.
// Geometric steps come first; `normalize`, if present, is last. The output is
// always scaled to [0, 1] (v / 255) and then normalised.

/** `[height, width]`, or one number: see each step. */
export type SizeSpec = number | readonly [number, number];

/**
 * Resize. `size: [h, w]`: exactly h × w (aspect not kept). `size: n`: the
 * shorter side becomes n, the longer floor(n · long / short) (aspect kept,
 * as torchvision's `Resize(n)`). Antialiased bilinear.
 */
export interface ResizeStep {
  readonly op: 'resize';
  readonly size: SizeSpec;
}

/**
 * The central h × w pixels (`size: n` means n × n), offsets rounded half to
 * even as torchvision; a side larger than the image is padded with 0.
 */
export interface CenterCropStep {
  readonly op: 'centerCrop';
  readonly size: SizeSpec;
}

/**
 * A random crop covering a fraction in `scale` of the image area with aspect
 * ratio (width / height) log-uniform in `ratio`, resized to `size`; after 10
 * failed draws, the central crop of the largest allowed aspect (torchvision's
 * rule). Defaults: scale [0.08, 1], ratio [3/4, 4/3].
 */
export interface RandomResizedCropStep {
  readonly op: 'randomResizedCrop';
  readonly size: SizeSpec;
  readonly scale?: readonly [number, number];
  readonly ratio?: readonly [number, number];
}

/** Mirror left–right with probability `p` (default 0.5). Always draws one number. */
export interface HorizontalFlipStep {
  readonly op: 'horizontalFlip';
  readonly p?: number;
}

/**
 * `(v / 255 − mean[c]) / std[c]` per channel. `preset: 'imagenet'` is
 * mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225] (3 channels). A
 * one-element mean/std applies to every channel.
 */
export type NormalizeStep =
  | { readonly op: 'normalize'; readonly preset: 'imagenet' }
  | { readonly op: 'normalize'; readonly mean: readonly number[]; readonly std: readonly number[] };

export type TransformStep =
  | ResizeStep
  | CenterCropStep
  | RandomResizedCropStep
  | HorizontalFlipStep
  | NormalizeStep;

export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

/** Training augmentation of the usual ImageNet recipe. */
export function imagenetTrainTransforms(size = 224): TransformStep[] {
  return [
    { op: 'randomResizedCrop', size },
    { op: 'horizontalFlip', p: 0.5 },
    { op: 'normalize', preset: 'imagenet' },
  ];
}

/** Evaluation preprocessing of the usual ImageNet recipe: resize 256, centre crop 224. */
export function imagenetEvalTransforms(
  size = 224,
  resizeTo = Math.round((size * 256) / 224),
): TransformStep[] {
  return [
    { op: 'resize', size: resizeTo },
    { op: 'centerCrop', size },
    { op: 'normalize', preset: 'imagenet' },
  ];
}

const STEP_KEYS: Record<TransformStep['op'], readonly string[]> = {
  resize: ['op', 'size'],
  centerCrop: ['op', 'size'],
  randomResizedCrop: ['op', 'size', 'scale', 'ratio'],
  horizontalFlip: ['op', 'p'],
  normalize: ['op', 'preset', 'mean', 'std'],
};

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1;
}

function checkSize(v: unknown, where: string): SizeSpec {
  if (isPositiveInt(v)) return v;
  if (Array.isArray(v) && v.length === 2 && isPositiveInt(v[0]) && isPositiveInt(v[1]))
    return [v[0], v[1]];
  throw new Error(
    `${where}: size must be a positive integer or [height, width] of positive integers, got ${JSON.stringify(v)}`,
  );
}

function checkRange(v: unknown, where: string, what: string, min: number): [number, number] {
  if (
    !Array.isArray(v) ||
    v.length !== 2 ||
    typeof v[0] !== 'number' ||
    typeof v[1] !== 'number' ||
    !Number.isFinite(v[0]) ||
    !Number.isFinite(v[1]) ||
    !(v[0] > min) ||
    v[0] > v[1]
  ) {
    throw new Error(
      `${where}: ${what} must be [lo, hi] with ${min} < lo ≤ hi, got ${JSON.stringify(v)}`,
    );
  }
  return [v[0], v[1]];
}

function checkNumbers(v: unknown, where: string, what: string, positive: boolean): number[] {
  if (
    !Array.isArray(v) ||
    v.length === 0 ||
    v.some((x) => typeof x !== 'number' || !Number.isFinite(x) || (positive && !(x > 0)))
  ) {
    throw new Error(
      `${where}: ${what} must be a non-empty array of ${positive ? 'positive ' : ''}finite numbers, got ${JSON.stringify(v)}`,
    );
  }
  return [...(v as number[])];
}

/**
 * Check a transform list (e.g. read back from a model's metadata) and return
 * a normalised copy. Throws naming the step on an unknown op or key, a bad
 * value, or a step after `normalize`.
 */
export function parseTransforms(value: unknown): TransformStep[] {
  if (!Array.isArray(value))
    throw new Error(`transforms must be an array of steps, got ${JSON.stringify(value)}`);
  const out: TransformStep[] = [];
  value.forEach((raw: unknown, i) => {
    const where = `transform step ${i}`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new Error(`${where}: must be an object with an "op", got ${JSON.stringify(raw)}`);
    const step = raw as Record<string, unknown>;
    const op = step.op as TransformStep['op'];
    const keys = STEP_KEYS[op];
    if (typeof op !== 'string' || !keys) {
      throw new Error(
        `${where}: unknown op ${JSON.stringify(step.op)}; use one of ${Object.keys(STEP_KEYS).join(', ')}`,
      );
    }
    const extra = Object.keys(step).filter((k) => !keys.includes(k));
    if (extra.length > 0)
      throw new Error(
        `${where} (${op}): unknown key(s) ${extra.join(', ')}; allowed: ${keys.join(', ')}`,
      );
    if (out.some((s) => s.op === 'normalize'))
      throw new Error(`${where} (${op}): normalize must be the last step`);
    const w = `${where} (${op})`;
    switch (op) {
      case 'resize':
      case 'centerCrop':
        out.push({ op, size: checkSize(step.size, w) });
        break;
      case 'randomResizedCrop': {
        const s: { -readonly [K in keyof RandomResizedCropStep]: RandomResizedCropStep[K] } = {
          op,
          size: checkSize(step.size, w),
        };
        if (step.scale !== undefined) {
          s.scale = checkRange(step.scale, w, 'scale', 0);
          if (s.scale[1] > 1)
            throw new Error(`${w}: scale must not exceed 1, got ${JSON.stringify(step.scale)}`);
        }
        if (step.ratio !== undefined) s.ratio = checkRange(step.ratio, w, 'ratio', 0);
        out.push(s);
        break;
      }
      case 'horizontalFlip': {
        const p = step.p;
        if (p !== undefined && (typeof p !== 'number' || !(p >= 0 && p <= 1)))
          throw new Error(`${w}: p must be a number in [0, 1], got ${JSON.stringify(p)}`);
        out.push(p === undefined ? { op } : { op, p });
        break;
      }
      case 'normalize': {
        if (step.preset !== undefined) {
          if (step.preset !== 'imagenet')
            throw new Error(
              `${w}: unknown preset ${JSON.stringify(step.preset)}; the preset is 'imagenet'`,
            );
          if (step.mean !== undefined || step.std !== undefined)
            throw new Error(`${w}: give either a preset or mean and std, not both`);
          out.push({ op, preset: 'imagenet' });
          break;
        }
        const mean = checkNumbers(step.mean, w, 'mean', false);
        const std = checkNumbers(step.std, w, 'std', true);
        if (mean.length !== std.length)
          throw new Error(`${w}: mean has ${mean.length} values, std has ${std.length}`);
        out.push({ op, mean, std });
        break;
      }
    }
  });
  return out;
}

function sizePair(size: SizeSpec): [number, number] {
  return typeof size === 'number' ? [size, size] : [size[0], size[1]];
}

/** Shorter side to n, longer side floor(n · long / short). */
function shorterSideSize(height: number, width: number, n: number): [number, number] {
  if (height <= width) return [n, Math.max(1, Math.floor((n * width) / height))];
  return [Math.max(1, Math.floor((n * height) / width)), n];
}

/**
 * The [height, width] the steps produce from an input of `input` size
 * (undefined: unknown, e.g. photos of mixed sizes); undefined when the
 * output size depends on an unknown input size.
 */
export function transformedSize(
  steps: readonly TransformStep[],
  input?: readonly [number, number],
): [number, number] | undefined {
  let size: [number, number] | undefined = input ? [input[0], input[1]] : undefined;
  for (const step of steps) {
    if (step.op === 'centerCrop' || step.op === 'randomResizedCrop') size = sizePair(step.size);
    else if (step.op === 'resize') {
      if (typeof step.size !== 'number') size = sizePair(step.size);
      else size = size ? shorterSideSize(size[0], size[1], step.size) : undefined;
    }
  }
  return size;
}

/** The per-channel mean and std of a normalize step, for `channels` channels. */
export function normalizeStats(
  step: NormalizeStep,
  channels: number,
): { mean: number[]; std: number[] } {
  const mean = 'preset' in step ? [...IMAGENET_MEAN] : [...step.mean];
  const std = 'preset' in step ? [...IMAGENET_STD] : [...step.std];
  if (mean.length === 1)
    return { mean: new Array(channels).fill(mean[0]), std: new Array(channels).fill(std[0]) };
  if (mean.length !== channels) {
    throw new Error(
      `normalize: ${'preset' in step ? `preset '${step.preset}' has` : 'mean/std have'} ${mean.length} values, but the image has ${channels} channel(s)` +
        (channels === 1 ? '; decode with channels: 3 or give one mean and std' : ''),
    );
  }
  return { mean, std };
}

/**
 * The crop randomResizedCrop takes from a height × width image: area
 * fraction uniform in `scale`, aspect ratio log-uniform in `ratio`, position
 * uniform; up to 10 draws, then the central crop clamped to `ratio`.
 */
export function sampleResizedCropBox(
  height: number,
  width: number,
  rng: Rng,
  scale: readonly [number, number] = [0.08, 1],
  ratio: readonly [number, number] = [3 / 4, 4 / 3],
): CropBox {
  const area = height * width;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + rng.next() * (scale[1] - scale[0]));
    const aspect = Math.exp(logLo + rng.next() * (logHi - logLo));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(width / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(height * ratio[1]);
  h = Math.min(Math.max(h, 1), height);
  w = Math.min(Math.max(w, 1), width);
  return {
    top: Math.floor((height - h) / 2),
    left: Math.floor((width - w) / 2),
    height: h,
    width: w,
  };
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision's centre crop offsets; negative when the side is padded. */
export function centerCropBox(height: number, width: number, size: SizeSpec): CropBox {
  const [ch, cw] = sizePair(size);
  const offset = (n: number, c: number) =>
    c > n ? -Math.floor((c - n) / 2) : roundHalfEven((n - c) / 2);
  return { top: offset(height, ch), left: offset(width, cw), height: ch, width: cw };
}

/** An image after the transforms: HWC, float32, scaled and normalised. */
export interface TransformedImage {
  readonly data: Float32Array;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

/**
 * Run `steps` on one decoded image (HWC, values 0–255). Random steps draw
 * from `rng` in step order, so one rng state gives one result; `rng` is
 * needed only when a random step is present. Never modifies `image`.
 */
export function applyTransforms(
  steps: readonly TransformStep[],
  image: PixelImage,
  rng?: Rng,
): TransformedImage {
  checkImage(image, 'applyTransforms');
  const plan = parseTransforms(steps);
  let cur: PixelImage = image;
  const update = (data: Float32Array, height: number, width: number) => {
    cur = { data, height, width, channels: image.channels };
  };
  const needRng = (op: string): Rng => {
    if (!rng) throw new Error(`applyTransforms: step ${op} is random and needs an rng`);
    return rng;
  };
  let norm: NormalizeStep | undefined;
  for (const step of plan) {
    switch (step.op) {
      case 'resize': {
        const [h, w] =
          typeof step.size === 'number'
            ? shorterSideSize(cur.height, cur.width, step.size)
            : sizePair(step.size);
        if (h !== cur.height || w !== cur.width) {
          const box = { top: 0, left: 0, height: cur.height, width: cur.width };
          update(resizeRegion(cur, box, h, w), h, w);
        }
        break;
      }
      case 'centerCrop': {
        const box = centerCropBox(cur.height, cur.width, step.size);
        update(crop(cur, box), box.height, box.width);
        break;
      }
      case 'randomResizedCrop': {
        const box = sampleResizedCropBox(
          cur.height,
          cur.width,
          needRng(step.op),
          step.scale,
          step.ratio,
        );
        const [h, w] = sizePair(step.size);
        update(resizeRegion(cur, box, h, w), h, w);
        break;
      }
      case 'horizontalFlip': {
        if (needRng(step.op).next() < (step.p ?? 0.5))
          update(flipHorizontal(cur), cur.height, cur.width);
        break;
      }
      case 'normalize':
        norm = step;
        break;
    }
  }
  const C = cur.channels;
  const out = new Float32Array(cur.data.length);
  const { mean, std } = norm ? normalizeStats(norm, C) : { mean: [0], std: [1] };
  for (let i = 0; i < out.length; i++) {
    const c = norm ? i % C : 0;
    out[i] = ((cur.data[i] as number) / 255 - (mean[c] as number)) / (std[c] as number);
  }
  return { data: out, height: cur.height, width: cur.width, channels: C };
}
