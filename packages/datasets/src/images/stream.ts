import { availableParallelism } from 'node:os';
import { createRng } from '@transferlab/core';
import type { Dataset } from '../types.js';
import {
  applyTransforms,
  normalizeStats,
  parseTransforms,
  type TransformStep,
  transformedSize,
} from './augment.js';
import {
  checkDecodeOptions,
  type DecodeImageOptions,
  decodedSize,
  decodeImage,
  ImageDecodeError,
} from './decode.js';
import type { ImageEntry, SkippedFile } from './image-folder.js';

export interface ImageBatchOptions {
  readonly batchSize: number;
  /** Steps run on every decoded image (see augment.ts); default none. */
  readonly transforms?: readonly TransformStep[];
  /** How files are decoded (size, channels, alpha); default RGB at the stored size. */
  readonly decode?: DecodeImageOptions;
  /** Seeds the order (when shuffled) and the augmentation (default 0). */
  readonly seed?: number;
  /** Mixed into the seed, so that every epoch differs yet replays (default 0). */
  readonly epoch?: number;
  /** Visit the entries in a seeded random order (default false: as given). */
  readonly shuffle?: boolean;
  /** Images decoded at once (default min(4, cores)). */
  readonly concurrency?: number;
  /** Leave out a last batch smaller than batchSize (default false). */
  readonly dropLast?: boolean;
  /** Called once per file that cannot be decoded, as it happens. */
  readonly onSkip?: (file: SkippedFile) => void;
}

/** One batch: `x` is NHWC float32, `shape` [n, h, w, c]; `y` and `paths` follow x's rows. */
export interface ImageBatch {
  readonly x: Float32Array;
  readonly y: Int32Array;
  readonly paths: readonly string[];
  readonly shape: readonly [number, number, number, number];
}

/** Counters of the latest pass, updated live. */
export interface ImageBatchStats {
  /** Images decoded and transformed so far. */
  decoded: number;
  /** Files that failed to decode (listed in `skipped`). */
  skipped: number;
  batches: number;
  /** Decodes under way now, and the most at any time (≤ concurrency). */
  inFlight: number;
  maxInFlight: number;
  /**
   * Images started but not yet copied into a batch (decoding, or done and
   * waiting for an earlier one), and the most at any time (≤ concurrency).
   */
  pending: number;
  maxPending: number;
}

export interface ImageBatchStream extends AsyncIterable<ImageBatch> {
  /** [h, w, c] of every image in the batches. */
  readonly imageShape: readonly [number, number, number];
  readonly stats: Readonly<ImageBatchStats>;
  /** Files of the latest pass that could not be decoded, with the decoder's reason. */
  readonly skipped: readonly SkippedFile[];
}

type Loaded =
  | { readonly ok: true; readonly data: Float32Array }
  | { readonly ok: false; readonly reason: string }
  | { readonly ok: false; readonly fatal: unknown };

function resolveShape(
  decode: DecodeImageOptions,
  steps: readonly TransformStep[],
  context: string,
): [number, number, number] {
  const channels = decode.channels ?? 3;
  const size = transformedSize(steps, decodedSize(decode));
  if (!size) {
    throw new Error(
      `${context}: images of different sizes cannot share a batch; end the transforms with centerCrop, randomResizedCrop or resize [h, w], or decode with size [h, w]`,
    );
  }
  const norm = steps.find((s) => s.op === 'normalize');
  if (norm) normalizeStats(norm, channels);
  return [size[0], size[1], channels];
}

/**
 * Decode, transform and batch `entries`, one pass (epoch) per iteration.
 *
 * Memory is bounded: at most `concurrency` images are decoded or waiting at
 * any time, plus the batch being filled; a folder far larger than memory
 * streams through. Decodes run in parallel on libuv's threads (sharp); the
 * transforms run on the calling thread. Batches come out in entry order (or
 * the seeded shuffle), whatever order the decodes finish in.
 *
 * A file that cannot be decoded (corrupt, truncated, not really an image,
 * deleted) is skipped: it is listed in `skipped` with the reason, counted in
 * `stats.skipped`, passed to `onSkip`, and the batch is filled with the next
 * images. Each image's augmentation draws from an rng derived from (seed,
 * epoch, entry index), so the same seed gives the same batches however the
 * decodes interleave, and a skipped file does not change the others.
 * Iterating again replays the same pass.
 */
export function imageBatches(
  entries: readonly ImageEntry[],
  opts: ImageBatchOptions,
): ImageBatchStream {
  const context = 'imageBatches';
  const { batchSize } = opts;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`${context}: batchSize must be a positive integer, got ${batchSize}`);
  const concurrency = opts.concurrency ?? Math.min(4, availableParallelism());
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new Error(`${context}: concurrency must be a positive integer, got ${concurrency}`);
  const decode = opts.decode ?? {};
  checkDecodeOptions(decode, context);
  const steps = parseTransforms(opts.transforms ?? []);
  const imageShape = resolveShape(decode, steps, context);
  const [H, W, C] = imageShape;
  const size = H * W * C;
  entries.forEach((e, i) => {
    if (typeof e?.path !== 'string' || !Number.isInteger(e.label) || e.label < 0)
      throw new Error(
        `${context}: entry ${i} must be {path, label} with a label ≥ 0, got ${JSON.stringify(e)}`,
      );
  });
  const seed = opts.seed ?? 0;
  const epoch = opts.epoch ?? 0;
  const random = steps.some((s) => s.op === 'randomResizedCrop' || s.op === 'horizontalFlip');

  const fresh = (): ImageBatchStats => ({
    decoded: 0,
    skipped: 0,
    batches: 0,
    inFlight: 0,
    maxInFlight: 0,
    pending: 0,
    maxPending: 0,
  });
  let stats = fresh();
  let skipped: SkippedFile[] = [];

  async function* pass(): AsyncGenerator<ImageBatch, void, undefined> {
    const st = fresh();
    const skips: SkippedFile[] = [];
    stats = st;
    skipped = skips;
    const n = entries.length;
    const base = createRng(seed).derive(`epoch:${epoch}`);
    const order = opts.shuffle ? base.derive('order').permutation(n) : undefined;
    const augment = base.derive('augment');
    const at = (pos: number): number => (order ? (order[pos] as number) : pos);

    const load = async (index: number): Promise<Loaded> => {
      const entry = entries[index] as ImageEntry;
      st.inFlight++;
      st.maxInFlight = Math.max(st.maxInFlight, st.inFlight);
      try {
        const image = await decodeImage(entry.path, decode);
        const out = applyTransforms(steps, image, random ? augment.derive(index) : undefined);
        if (out.height !== H || out.width !== W)
          throw new Error(
            `${context}: ${entry.path} came out ${out.height}×${out.width}, not ${H}×${W}`,
          );
        st.decoded++;
        return { ok: true, data: out.data };
      } catch (err) {
        if (err instanceof ImageDecodeError) return { ok: false, reason: err.reason };
        return { ok: false, fatal: err };
      } finally {
        st.inFlight--;
      }
    };

    // A sliding window over the visiting order: position p is started once
    // every position before p - concurrency has been copied into a batch.
    const started = new Map<number, Promise<Loaded>>();
    let next = 0;
    const topUp = (consumed: number) => {
      while (next < n && next - consumed < concurrency) {
        started.set(next, load(at(next)));
        next++;
        st.pending++;
        st.maxPending = Math.max(st.maxPending, st.pending);
      }
    };

    let x = new Float32Array(batchSize * size);
    let y = new Int32Array(batchSize);
    let paths: string[] = [];
    const emit = (): ImageBatch => {
      const k = paths.length;
      const batch: ImageBatch = {
        x: k === batchSize ? x : x.slice(0, k * size),
        y: k === batchSize ? y : y.slice(0, k),
        paths,
        shape: [k, H, W, C],
      };
      st.batches++;
      x = new Float32Array(batchSize * size);
      y = new Int32Array(batchSize);
      paths = [];
      return batch;
    };
    try {
      for (let pos = 0; pos < n; pos++) {
        topUp(pos);
        const result = await (started.get(pos) as Promise<Loaded>);
        started.delete(pos);
        st.pending--;
        const entry = entries[at(pos)] as ImageEntry;
        if (!result.ok) {
          if ('fatal' in result) throw result.fatal;
          const file = { path: entry.path, reason: result.reason };
          skips.push(file);
          st.skipped++;
          opts.onSkip?.(file);
          continue;
        }
        x.set(result.data, paths.length * size);
        y[paths.length] = entry.label;
        paths.push(entry.path);
        if (paths.length === batchSize) {
          // Start the next decodes before handing the batch over, so they overlap the consumer.
          topUp(pos + 1);
          yield emit();
        }
      }
      if (paths.length > 0 && !opts.dropLast) yield emit();
    } finally {
      // Early exit: let decodes under way finish unobserved (load never rejects).
      started.clear();
    }
  }

  return {
    imageShape,
    get stats() {
      return stats;
    },
    get skipped() {
      return skipped;
    },
    [Symbol.asyncIterator]: () => pass(),
  };
}

export interface LoadImageFolderDatasetOptions {
  /** Class names, index = label (e.g. `scan.classes`). */
  readonly classes: readonly string[];
  readonly name?: string;
  readonly decode?: DecodeImageOptions;
  /** Usually deterministic preprocessing; random steps are drawn once, from `seed`. */
  readonly transforms?: readonly TransformStep[];
  readonly seed?: number;
  readonly concurrency?: number;
  /** Refuse to build an x larger than this (default 1 GiB): use imageBatches instead. */
  readonly maxBytes?: number;
  readonly onSkip?: (file: SkippedFile) => void;
}

/** An in-memory Dataset of decoded images, with the files that were skipped. */
export interface ImageFolderDataset extends Dataset {
  /** Path of each example (row of x). */
  readonly paths: readonly string[];
  readonly skipped: readonly SkippedFile[];
}

/**
 * Decode every entry into one in-memory `Dataset` (x NHWC in entry order),
 * for folders that fit in memory. Corrupt files are skipped and listed in
 * `skipped`; throws when none decodes or x would exceed `maxBytes`.
 */
export async function loadImageFolderDataset(
  entries: readonly ImageEntry[],
  opts: LoadImageFolderDatasetOptions,
): Promise<ImageFolderDataset> {
  const name = opts.name ?? 'image-folder';
  const numClasses = opts.classes.length;
  if (numClasses === 0) throw new Error(`loadImageFolderDataset ${name}: no classes given`);
  if (entries.length === 0) throw new Error(`loadImageFolderDataset ${name}: no entries given`);
  const bad = entries.findIndex((e) => !(e.label < numClasses));
  if (bad !== -1)
    throw new Error(
      `loadImageFolderDataset ${name}: entry ${bad} (${entries[bad]?.path}) has label ${entries[bad]?.label}, outside 0..${numClasses - 1}`,
    );
  const stream = imageBatches(entries, {
    batchSize: 32,
    ...(opts.transforms ? { transforms: opts.transforms } : {}),
    ...(opts.decode ? { decode: opts.decode } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
    ...(opts.onSkip ? { onSkip: opts.onSkip } : {}),
  });
  const shape = stream.imageShape;
  const size = shape[0] * shape[1] * shape[2];
  const bytes = entries.length * size * 4;
  const maxBytes = opts.maxBytes ?? 2 ** 30;
  if (bytes > maxBytes)
    throw new Error(
      `loadImageFolderDataset ${name}: ${entries.length} images of ${shape.join('×')} need ${(bytes / 2 ** 20).toFixed(0)} MiB, more than maxBytes ${(maxBytes / 2 ** 20).toFixed(0)} MiB; stream them with imageBatches`,
    );
  let x = new Float32Array(entries.length * size);
  let y = new Int32Array(entries.length);
  const paths: string[] = [];
  for await (const batch of stream) {
    x.set(batch.x, paths.length * size);
    y.set(batch.y, paths.length);
    paths.push(...batch.paths);
  }
  const skipped = [...stream.skipped];
  if (paths.length === 0) {
    throw new Error(
      `loadImageFolderDataset ${name}: none of the ${entries.length} images could be decoded (e.g. ${skipped[0]?.path}: ${skipped[0]?.reason})`,
    );
  }
  if (paths.length < entries.length) {
    x = x.slice(0, paths.length * size);
    y = y.slice(0, paths.length);
  }
  return {
    name,
    x,
    y,
    shape: [...shape],
    numClasses,
    classNames: [...opts.classes],
    paths,
    skipped,
  };
}
