/**
 * The preprocessing a model needs, as data: read from a backbone file's
 * metadata (or given as options) before training, and written into the
 * model.onnx that `fit` produces so that `predict` (or any onnxruntime
 * user) prepares an image exactly as the final evaluation did.
 *
 * metadata_props keys (values are JSON):
 *
 * - `transferlab.preprocess` — on a backbone you bring, any of:
 *   `{"size": 224 | [h, w], "normalize": "imagenet" | "none" | {"mean": […], "std": […]},
 *     "layout": "NCHW" | "NHWC", "channels": 1 | 3, "features": "<value name>",
 *     "transforms": [ …steps, as parseTransforms reads them ]}`
 *   (`size` + `normalize` are enough; `transforms` replaces both).
 *   In a model.onnx written by `fit`, the full form:
 *   `{"format": 1, "input": "input", "layout": "NHWC", "height": 32, "width": 32,
 *     "channels": 3, "transforms": […], "pixel_scale": 1/255, "mean": […] | null, "std": […] | null}`:
 *   decode to RGB (or gray when channels is 1), run `transforms` on the 0–255
 *   pixels (their result is (pixel / 255 − mean) / std), lay the values out as
 *   `layout`, batch along the first axis.
 * - `transferlab.classes` — the class names, index = logit (model.onnx only).
 */
import {
  type NormalizeStep,
  normalizeStats,
  parseTransforms,
  type TransformStep,
  transformedSize,
} from '@transferlab/datasets';

export const PREPROCESS_KEY = 'transferlab.preprocess';
export const CLASSES_KEY = 'transferlab.classes';

export type Layout = 'NHWC' | 'NCHW';
export type NormalizeOption = 'imagenet' | 'none';

/** Everything needed to turn an image file into the model's input. */
export interface Preprocess {
  readonly layout: Layout;
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
  /** Steps on the decoded 0–255 pixels (HWC); the last one may be normalize. */
  readonly transforms: readonly TransformStep[];
}

/** What a backbone file's `transferlab.preprocess` may say (every field optional). */
export interface PreprocessHints {
  size?: [number, number];
  normalize?: NormalizeStep | null;
  transforms?: TransformStep[];
  layout?: Layout;
  channels?: 1 | 3;
  features?: string;
}

function positiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1;
}

export function parseLayout(v: unknown, where: string): Layout {
  if (v === 'NHWC' || v === 'NCHW') return v;
  throw new Error(`${where}: layout must be "NCHW" or "NHWC", got ${JSON.stringify(v)}`);
}

export function parseNormalize(v: unknown, where: string): NormalizeStep | null {
  if (v === 'none' || v === null) return null;
  if (v === 'imagenet') return { op: 'normalize', preset: 'imagenet' };
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const [step] = parseTransforms([{ op: 'normalize', ...(v as object) }]);
    return step as NormalizeStep;
  }
  throw new Error(
    `${where}: normalize must be "imagenet", "none" or {"mean": [...], "std": [...]}, got ${JSON.stringify(v)}`,
  );
}

/** Read a backbone file's `transferlab.preprocess` value; errors name the file and the field. */
export function parsePreprocessHints(json: string, source: string): PreprocessHints {
  const where = `${source}: metadata "${PREPROCESS_KEY}"`;
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`${where} is not JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new Error(`${where} must be a JSON object, got ${json.slice(0, 80)}`);
  const o = raw as Record<string, unknown>;
  const known = [
    'size',
    'height',
    'width',
    'normalize',
    'mean',
    'std',
    'transforms',
    'layout',
    'channels',
    'features',
    // Written by fit into model.onnx: a fitted model can be fitted again.
    'format',
    'input',
    'pixel_scale',
  ];
  const unknown = Object.keys(o).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    throw new Error(`${where}: unknown field(s) ${unknown.join(', ')}; known: ${known.join(', ')}`);
  const hints: PreprocessHints = {};
  if (o.size !== undefined) {
    if (positiveInt(o.size)) hints.size = [o.size, o.size];
    else if (Array.isArray(o.size) && o.size.length === 2 && o.size.every(positiveInt))
      hints.size = [o.size[0] as number, o.size[1] as number];
    else
      throw new Error(`${where}: size must be n or [height, width], got ${JSON.stringify(o.size)}`);
  } else if (o.height !== undefined || o.width !== undefined) {
    if (!positiveInt(o.height) || !positiveInt(o.width))
      throw new Error(`${where}: height and width must both be positive integers`);
    hints.size = [o.height, o.width];
  }
  if (o.transforms !== undefined) {
    hints.transforms = parseTransforms(o.transforms);
  } else if (o.normalize !== undefined) {
    hints.normalize = parseNormalize(o.normalize, where);
  } else if (o.mean !== undefined || o.std !== undefined) {
    hints.normalize =
      o.mean === null && o.std === null
        ? null
        : parseNormalize({ mean: o.mean, std: o.std }, where);
  }
  if (o.layout !== undefined) hints.layout = parseLayout(o.layout, where);
  if (o.channels !== undefined) {
    if (o.channels !== 1 && o.channels !== 3)
      throw new Error(`${where}: channels must be 1 or 3, got ${JSON.stringify(o.channels)}`);
    hints.channels = o.channels;
  }
  if (o.features !== undefined) {
    if (typeof o.features !== 'string' || o.features === '')
      throw new Error(`${where}: features must be a value name, got ${JSON.stringify(o.features)}`);
    hints.features = o.features;
  }
  return hints;
}

/**
 * The evaluation preprocessing at h × w: the shorter side resized to
 * 256/224 of the crop (ImageNet's resize 256 → centre crop 224), the
 * central h × w, then the normalisation.
 */
export function evalTransforms(
  height: number,
  width: number,
  normalize: NormalizeStep | null,
): TransformStep[] {
  const resizeTo = Math.round((Math.max(height, width) * 256) / 224);
  return [
    { op: 'resize', size: resizeTo },
    { op: 'centerCrop', size: height === width ? height : [height, width] },
    ...(normalize ? [normalize] : []),
  ];
}

/**
 * Training augmentation at h × w: a random resized crop of 25–100% of the
 * image (torchvision's 8% lower bound loses the object of a small image),
 * aspect 3/4–4/3, and a horizontal flip.
 */
export function trainTransforms(
  height: number,
  width: number,
  normalize: NormalizeStep | null,
): TransformStep[] {
  return [
    {
      op: 'randomResizedCrop',
      size: height === width ? height : [height, width],
      scale: [0.25, 1],
    },
    { op: 'horizontalFlip', p: 0.5 },
    ...(normalize ? [normalize] : []),
  ];
}

export function normalizeOf(transforms: readonly TransformStep[]): NormalizeStep | null {
  return (transforms.find((s) => s.op === 'normalize') as NormalizeStep | undefined) ?? null;
}

/** The model's input shape for one example, in its layout. */
export function inputShapeOf(p: Preprocess): number[] {
  return p.layout === 'NCHW' ? [p.channels, p.height, p.width] : [p.height, p.width, p.channels];
}

/** The JSON written under `transferlab.preprocess` into a fitted model. */
export function preprocessRecord(p: Preprocess, inputName: string): Record<string, unknown> {
  const norm = normalizeOf(p.transforms);
  const stats = norm ? normalizeStats(norm, p.channels) : undefined;
  return {
    format: 1,
    input: inputName,
    layout: p.layout,
    height: p.height,
    width: p.width,
    channels: p.channels,
    transforms: p.transforms,
    pixel_scale: 1 / 255,
    mean: stats ? stats.mean : null,
    std: stats ? stats.std : null,
  };
}

/**
 * The preprocessing of a model written by `fit` (or any model whose
 * `transferlab.preprocess` gives a size, or transforms that end at a fixed size).
 */
export function preprocessFromMetadata(
  meta: Readonly<Record<string, string>>,
  source: string,
): Preprocess & { input?: string } {
  const json = meta[PREPROCESS_KEY];
  if (json === undefined)
    throw new Error(
      `${source} has no "${PREPROCESS_KEY}" metadata: it was not written by \`pnpm bench fit\`, so its input size and normalisation are unknown`,
    );
  const hints = parsePreprocessHints(json, source);
  const raw = JSON.parse(json) as { input?: unknown };
  const transforms =
    hints.transforms ??
    (hints.size
      ? evalTransforms(hints.size[0], hints.size[1], hints.normalize ?? null)
      : undefined);
  const size = transforms ? transformedSize(transforms) : undefined;
  if (!transforms || !size)
    throw new Error(
      `${source}: metadata "${PREPROCESS_KEY}" gives no input size ("size", or transforms ending in a crop)`,
    );
  return {
    layout: hints.layout ?? 'NHWC',
    height: size[0],
    width: size[1],
    channels: hints.channels ?? 3,
    transforms,
    ...(typeof raw.input === 'string' ? { input: raw.input } : {}),
  };
}

/** Class names stored in a fitted model, or `class 0`, `class 1`, … when there are none. */
export function classesFromMetadata(
  meta: Readonly<Record<string, string>>,
  numClasses: number,
  source: string,
): string[] {
  const json = meta[CLASSES_KEY];
  if (json === undefined) return Array.from({ length: numClasses }, (_, i) => `class ${i}`);
  let names: unknown;
  try {
    names = JSON.parse(json);
  } catch (err) {
    throw new Error(`${source}: metadata "${CLASSES_KEY}" is not JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string'))
    throw new Error(`${source}: metadata "${CLASSES_KEY}" must be an array of class names`);
  if (names.length !== numClasses)
    throw new Error(
      `${source}: metadata "${CLASSES_KEY}" names ${names.length} classes, the model outputs ${numClasses}`,
    );
  return names as string[];
}

/** HWC rows (n examples) → CHW rows, for models that take NCHW input. */
export function hwcToChw(
  x: Float32Array,
  n: number,
  h: number,
  w: number,
  c: number,
): Float32Array {
  const out = new Float32Array(x.length);
  const size = h * w * c;
  for (let k = 0; k < n; k++) {
    const base = k * size;
    for (let i = 0; i < h * w; i++)
      for (let ch = 0; ch < c; ch++) out[base + ch * h * w + i] = x[base + i * c + ch] as number;
  }
  return out;
}
