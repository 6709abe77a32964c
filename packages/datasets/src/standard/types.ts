import type { ImageEntry, ImageFolderScan, ImageSplit } from '../images/image-folder.js';
import type { Dataset } from '../types.js';
import type { StandardSourceOptions } from './source.js';
import type { StandardSplitOptions } from './splits.js';

export const STANDARD_DATASET_IDS = [
  'cifar10',
  'cifar100',
  'flowers102',
  'pets',
  'cub200',
] as const;
export type StandardDatasetId = (typeof STANDARD_DATASET_IDS)[number];

/** Where the files come from, and how val is drawn. */
export interface LoadStandardDatasetOptions extends StandardSourceOptions, StandardSplitOptions {}

interface StandardDatasetBase {
  readonly id: StandardDatasetId;
  readonly title: string;
  /** The unpacked files in the cache. */
  readonly root: string;
  /** Class names, index = label. */
  readonly classes: readonly string[];
  /** Splits drawn here by seed rather than published (['val'], or [] for Flowers-102). */
  readonly drawn: readonly ImageSplit[];
  readonly warnings: readonly string[];
}

/**
 * A dataset of image files (Flowers-102, Pets, CUB-200): the official
 * train/test (and val) lists as `ImageEntry`s, for `imageBatches` and
 * `loadImageFolderDataset` as they are. It is also an `ImageFolderScan`
 * (layout 'splits', nothing skipped), so code written for a scanned image
 * folder takes it unchanged.
 */
export interface StandardImageDataset extends StandardDatasetBase, ImageFolderScan {
  readonly kind: 'images';
  readonly layout: 'splits';
  readonly splits: Readonly<Record<ImageSplit, readonly ImageEntry[]>>;
}

/** A dataset held as arrays (CIFAR): x is NHWC float32 in [0, 1], shape [32, 32, 3]. */
export interface StandardArrayDataset extends StandardDatasetBase {
  readonly kind: 'arrays';
  readonly splits: Readonly<Record<ImageSplit, Dataset>>;
}

export type StandardDataset = StandardImageDataset | StandardArrayDataset;
