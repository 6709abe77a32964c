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

/** One split ready to train or evaluate on: x in the model's layout. */
export interface FitSplit extends Dataset {
  /** The image files of the rows (empty for a dataset held as arrays). */
  readonly paths: readonly string[];
  readonly skipped: readonly SkippedFile[];
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

/** One split decoded and preprocessed with `p.transforms`, in the model's layout. */
export async function loadFitSplit(
  data: FitData,
  split: ImageSplit,
  p: Preprocess,
  seed: number,
): Promise<FitSplit> {
  const source = data.splits[split];
  let ds: FitSplit;
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
    });
  }
  if (p.layout === 'NHWC') return ds;
  const [h, w, c] = ds.shape as [number, number, number];
  return { ...ds, x: hwcToChw(ds.x, ds.y.length, h, w, c), shape: [c, h, w] };
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
