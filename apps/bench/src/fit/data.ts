/**
 * fit's data: an image folder (ImageFolder layout) or a standard dataset by
 * id, as train / val / test in the model's input layout, preprocessed with
 * the model's evaluation transforms; and each epoch's augmented training
 * batches, when asked for.
 */
import { stat } from 'node:fs/promises';
import { createRng } from '@transferlab/core';
import {
  applyTransforms,
  type Dataset,
  type DownloadProgress,
  type ImageEntry,
  type ImageSplit,
  imageBatches,
  isStandardDatasetId,
  type LoadStandardDatasetOptions,
  loadImageFolderDataset,
  loadStandardDataset,
  type SkippedFile,
  STANDARD_DATASET_IDS,
  scanImageFolder,
  type TransformStep,
} from '@transferlab/datasets';
import { hwcToChw, type Preprocess } from './preprocess.js';

const SPLITS = ['train', 'val', 'test'] as const;

/** Where fit's examples come from, before decoding. */
export interface FitData {
  /** The folder, or the standard dataset's id and cache folder. */
  readonly root: string;
  /** How the splits were made, for the report. */
  readonly layout: string;
  readonly classes: readonly string[];
  readonly warnings: readonly string[];
  /** Files not used (non-images, files outside class folders). */
  readonly skipped: readonly SkippedFile[];
  /** Image files to decode, or (CIFAR) images held as arrays: NHWC float32 in [0, 1]. */
  readonly splits: Readonly<Record<ImageSplit, readonly ImageEntry[] | Dataset>>;
}

/** Rows of a split in the model's layout. */
export interface SplitBatch {
  readonly x: Float32Array;
  readonly y: Int32Array;
}

/**
 * One split ready to train or evaluate on: x in the model's layout, or —
 * when `streamed` — no x at all (`x` is empty): the rows are decoded from
 * `paths` whenever they are read, so the split can be larger than memory.
 * Either way read it through `splitBatches`.
 */
export interface FitSplit extends Dataset {
  /** The image files of the rows (empty for a dataset held as arrays). */
  readonly paths: readonly string[];
  readonly skipped: readonly SkippedFile[];
  /** Decodes rows `order` (default all, in row order) into batches of `batchSize`. */
  readonly streamed?: (
    order: ArrayLike<number> | undefined,
    batchSize: number,
  ) => AsyncIterable<SplitBatch>;
}

/**
 * The rows `order` (default all, in row order) of a split in batches of
 * `batchSize`, from memory or decoded from disk: the same values either way.
 */
export async function* splitBatches(
  split: FitSplit,
  order: ArrayLike<number> | undefined,
  batchSize: number,
): AsyncGenerator<SplitBatch> {
  if (split.streamed) {
    yield* split.streamed(order, batchSize);
    return;
  }
  const size = split.shape.reduce((a, b) => a * b, 1);
  const n = order ? order.length : split.y.length;
  for (let start = 0; start < n; start += batchSize) {
    const count = Math.min(batchSize, n - start);
    if (!order) {
      // Copies, as the streamed rows are fresh arrays: a consumer may keep or hand them on.
      yield {
        x: split.x.slice(start * size, (start + count) * size),
        y: split.y.slice(start, start + count),
      };
      continue;
    }
    const x = new Float32Array(count * size);
    const y = new Int32Array(count);
    for (let j = 0; j < count; j++) {
      const i = order[start + j] as number;
      x.set(split.x.subarray(i * size, (i + 1) * size), j * size);
      y[j] = split.y[i] as number;
    }
    yield { x, y };
  }
}

/** Bytes x would take in memory: every image of the split, decoded to float32 in the model's shape. */
export function decodedBytes(data: FitData, split: ImageSplit, p: Preprocess): number {
  return splitSize(data.splits[split]) * p.height * p.width * p.channels * 4;
}

/** Whether a split is image files (which can be streamed) rather than arrays already in memory. */
export function isFileSplit(data: FitData, split: ImageSplit): boolean {
  return !isArrays(data.splits[split]);
}

const isArrays = (s: readonly ImageEntry[] | Dataset): s is Dataset => !Array.isArray(s);

export function splitSize(s: readonly ImageEntry[] | Dataset): number {
  return isArrays(s) ? s.y.length : s.length;
}

/**
 * `data` as a folder when one exists there, else as a standard dataset id
 * (downloaded and checked on first use); errors say which was tried.
 */
export async function resolveFitData(
  data: string,
  seed: number,
  standard: LoadStandardDatasetOptions = {},
  onDownload?: (p: DownloadProgress) => void,
  /** A source: every image not in a val/ or test/ folder is training data (no split drawn). */
  asSource = false,
): Promise<FitData> {
  const isDir = await stat(data).then(
    (s) => s.isDirectory(),
    () => undefined,
  );
  let out: FitData;
  if (isDir === undefined && isStandardDatasetId(data)) {
    const ds = await loadStandardDataset(data, {
      seed,
      ...standard,
      ...(asSource ? { valFraction: 0 } : {}),
      ...(onDownload && !standard.onProgress ? { onProgress: onDownload } : {}),
    });
    out = {
      root: `${ds.title} (${ds.root})`,
      layout: `official split${ds.drawn.length ? `, ${ds.drawn.join(' and ')} drawn from train with seed ${seed}` : 's'}`,
      classes: ds.classes,
      warnings: ds.warnings,
      skipped: [],
      splits: ds.splits,
    };
  } else if (isDir === undefined && /^[a-z][a-z0-9-]*$/i.test(data)) {
    throw new Error(
      `fit: no folder "${data}", and no standard dataset of that name (${STANDARD_DATASET_IDS.join(', ')}): give --data a folder of images in class sub-folders (DIR/<class>/<image>, or DIR/train|val|test/<class>/<image>) or a standard dataset id`,
    );
  } else {
    const scan = await scanImageFolder(data, {
      seed,
      ...(asSource ? { fractions: { train: 1, val: 0, test: 0 } } : {}),
    });
    out = {
      root: scan.root,
      layout:
        scan.layout === 'flat'
          ? `one pool, split with seed ${seed}`
          : `split folders${scan.drawn.length ? `, ${scan.drawn.join(' and ')} drawn from train with seed ${seed}` : ''}`,
      classes: scan.classes,
      warnings: scan.warnings,
      skipped: scan.skipped,
      splits: scan.splits,
    };
  }
  for (const split of asSource ? (['train'] as const) : SPLITS)
    if (splitSize(out.splits[split]) === 0)
      throw new Error(
        `fit: the ${split} split of ${out.root} has no images` +
          (split === 'train'
            ? ''
            : ` (too few images per class to draw one, or an empty ${split}/ folder)`),
      );
  return out;
}

/** A decoded image's pixels (0–255) from a row of an array dataset in [0, 1]. */
function arrayImage(ds: Dataset, i: number) {
  const [h, w, c] = ds.shape as [number, number, number];
  const size = h * w * c;
  const data = new Uint8Array(size);
  for (let k = 0; k < size; k++) data[k] = Math.round((ds.x[i * size + k] as number) * 255);
  return { data, height: h, width: w, channels: c };
}

function checkArrayChannels(ds: Dataset, p: Preprocess): void {
  const c = ds.shape[2];
  if (ds.shape.length !== 3 || c !== p.channels)
    throw new Error(
      `fit: ${ds.name} holds images of shape [${ds.shape}], the backbone takes ${p.channels} channel(s)`,
    );
}

/**
 * One split decoded and preprocessed with `p.transforms`, in the model's
 * layout. With `stream` (image files only), nothing is kept: the files are
 * decoded once to learn which ones decode — so that the rows, and a seed's
 * batches, are the same as in memory — and again whenever rows are read.
 * In memory, x is refused beyond `maxBytes` (default 1 GiB).
 */
export async function loadFitSplit(
  data: FitData,
  split: ImageSplit,
  p: Preprocess,
  seed: number,
  opts: { stream?: boolean; maxBytes?: number } = {},
): Promise<FitSplit> {
  const source = data.splits[split];
  let ds: FitSplit;
  if (!isArrays(source) && opts.stream) return streamedSplit(data, split, source, p, seed);
  if (isArrays(source)) {
    checkArrayChannels(source, p);
    const n = source.y.length;
    const size = p.height * p.width * p.channels;
    const x = new Float32Array(n * size);
    for (let i = 0; i < n; i++) {
      const out = applyTransforms(p.transforms, arrayImage(source, i));
      if (out.height !== p.height || out.width !== p.width)
        throw new Error(
          `fit: preprocessing gives ${out.height}×${out.width}, not ${p.height}×${p.width}`,
        );
      x.set(out.data, i * size);
    }
    ds = {
      name: `${data.root} (${split})`,
      x,
      y: source.y,
      shape: [p.height, p.width, p.channels],
      numClasses: data.classes.length,
      classNames: [...data.classes],
      paths: [],
      skipped: [],
    };
  } else {
    ds = await loadImageFolderDataset(source, {
      classes: data.classes,
      name: `${data.root} (${split})`,
      decode: { channels: p.channels },
      transforms: p.transforms,
      seed,
      ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
    });
  }
  if (p.layout === 'NHWC') return ds;
  const [h, w, c] = ds.shape as [number, number, number];
  return { ...ds, x: hwcToChw(ds.x, ds.y.length, h, w, c), shape: [c, h, w] };
}

async function streamedSplit(
  data: FitData,
  split: ImageSplit,
  entries: readonly ImageEntry[],
  p: Preprocess,
  seed: number,
): Promise<FitSplit> {
  const name = `${data.root} (${split})`;
  const options = {
    decode: { channels: p.channels },
    transforms: p.transforms,
    seed,
  } as const;
  // The checking pass: which files decode, in entry order (as loadImageFolderDataset keeps them).
  const check = imageBatches(entries, { ...options, batchSize: 64 });
  const paths: string[] = [];
  const labels: number[] = [];
  for await (const b of check) {
    paths.push(...b.paths);
    for (const label of b.y) labels.push(label);
  }
  const skipped = [...check.skipped];
  if (paths.length === 0)
    throw new Error(
      `fit: none of the ${entries.length} images of ${name} could be decoded (e.g. ${skipped[0]?.path}: ${skipped[0]?.reason})`,
    );
  const y = Int32Array.from(labels);
  const [h, w, c] = check.imageShape;
  const layout = (x: Float32Array, n: number) =>
    p.layout === 'NCHW' ? hwcToChw(x, n, h, w, c) : x;
  return {
    name,
    x: new Float32Array(0),
    y,
    shape: p.layout === 'NCHW' ? [c, h, w] : [h, w, c],
    numClasses: data.classes.length,
    classNames: [...data.classes],
    paths,
    skipped,
    async *streamed(order, batchSize) {
      const rows = order
        ? Array.from(order, (i) => ({ path: paths[i] as string, label: y[i] as number }))
        : paths.map((path, i) => ({ path, label: y[i] as number }));
      const stream = imageBatches(rows, {
        ...options,
        batchSize,
        // Rows are positions: a file that stops decoding would shift every row after it.
        onSkip: (f) => {
          throw new Error(
            `fit: ${f.path} decoded when ${name} was checked and no longer does (${f.reason}); was the folder changed during training?`,
          );
        },
      });
      for await (const b of stream) yield { x: layout(b.x, b.shape[0]), y: b.y };
    },
  };
}

/**
 * One epoch of augmented training batches in the model's layout, shuffled,
 * drawn from (seed, epoch) so a seed replays: streamed from disk for image
 * files (only the images `train` decoded), transformed in memory for arrays.
 */
export async function* augmentedEpoch(args: {
  data: FitData;
  train: FitSplit;
  steps: readonly TransformStep[];
  p: Preprocess;
  batchSize: number;
  seed: number;
  epoch: number;
}): AsyncGenerator<{ x: Float32Array; y: Int32Array }> {
  const { data, train, steps, p, batchSize, seed, epoch } = args;
  const layout = (x: Float32Array, n: number) =>
    p.layout === 'NCHW' ? hwcToChw(x, n, p.height, p.width, p.channels) : x;
  const source = data.splits.train;
  if (!isArrays(source)) {
    const entries = train.paths.map((path, i) => ({ path, label: train.y[i] as number }));
    const stream = imageBatches(entries, {
      batchSize,
      transforms: steps,
      decode: { channels: p.channels },
      seed,
      epoch,
      shuffle: true,
    });
    for await (const b of stream) yield { x: layout(b.x, b.shape[0]), y: b.y };
    return;
  }
  // The same seeding as imageBatches: order and each image's draw from (seed, epoch, index).
  const base = createRng(seed).derive(`epoch:${epoch}`);
  const order = base.derive('order').permutation(source.y.length);
  const augment = base.derive('augment');
  const size = p.height * p.width * p.channels;
  for (let start = 0; start < order.length; start += batchSize) {
    const idx = order.subarray(start, Math.min(order.length, start + batchSize));
    const x = new Float32Array(idx.length * size);
    const y = new Int32Array(idx.length);
    idx.forEach((i, k) => {
      x.set(applyTransforms(steps, arrayImage(source, i), augment.derive(i)).data, k * size);
      y[k] = source.y[i] as number;
    });
    yield { x: layout(x, idx.length), y };
  }
}
