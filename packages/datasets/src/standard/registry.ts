import {
  CIFAR10_SOURCE,
  CIFAR100_SOURCE,
  type LoadCifarOptions,
  loadCifar10,
  loadCifar100,
} from './cifar.js';
import { CUB200_SOURCE, loadCub200 } from './cub200.js';
import { FLOWERS102_SOURCE, loadFlowers102 } from './flowers102.js';
import { loadOxfordPets, PETS_SOURCE } from './pets.js';
import type { StandardFile } from './source.js';
import {
  type LoadStandardDatasetOptions,
  STANDARD_DATASET_IDS,
  type StandardDataset,
  type StandardDatasetId,
} from './types.js';

export interface StandardDatasetInfo {
  readonly id: StandardDatasetId;
  readonly title: string;
  /** 'arrays': in-memory Datasets (CIFAR); 'images': ImageEntry lists of JPEG files. */
  readonly kind: 'arrays' | 'images';
  readonly homepage: string;
  readonly numClasses: number;
  /** Official split sizes (val: only where published). */
  readonly sizes: { readonly train: number; readonly val?: number; readonly test: number };
  /** The published files, with their recorded SHA-256 and size. */
  readonly files: readonly StandardFile[];
  readonly load: (opts?: LoadStandardDatasetOptions) => Promise<StandardDataset>;
}

export const STANDARD_DATASETS: Readonly<Record<StandardDatasetId, StandardDatasetInfo>> = {
  cifar10: {
    id: 'cifar10',
    title: CIFAR10_SOURCE.title,
    kind: 'arrays',
    homepage: 'https://www.cs.toronto.edu/~kriz/cifar.html',
    numClasses: 10,
    sizes: { train: 50_000, test: 10_000 },
    files: CIFAR10_SOURCE.files,
    load: loadCifar10,
  },
  cifar100: {
    id: 'cifar100',
    title: CIFAR100_SOURCE.title,
    kind: 'arrays',
    homepage: 'https://www.cs.toronto.edu/~kriz/cifar.html',
    numClasses: 100,
    sizes: { train: 50_000, test: 10_000 },
    files: CIFAR100_SOURCE.files,
    load: loadCifar100,
  },
  flowers102: {
    id: 'flowers102',
    title: FLOWERS102_SOURCE.title,
    kind: 'images',
    homepage: 'https://www.robots.ox.ac.uk/~vgg/data/flowers/102/',
    numClasses: 102,
    sizes: { train: 1_020, val: 1_020, test: 6_149 },
    files: FLOWERS102_SOURCE.files,
    load: loadFlowers102,
  },
  pets: {
    id: 'pets',
    title: PETS_SOURCE.title,
    kind: 'images',
    homepage: 'https://www.robots.ox.ac.uk/~vgg/data/pets/',
    numClasses: 37,
    sizes: { train: 3_680, test: 3_669 },
    files: PETS_SOURCE.files,
    load: loadOxfordPets,
  },
  cub200: {
    id: 'cub200',
    title: CUB200_SOURCE.title,
    kind: 'images',
    homepage: 'https://www.vision.caltech.edu/datasets/cub_200_2011/',
    numClasses: 200,
    sizes: { train: 5_994, test: 5_794 },
    files: CUB200_SOURCE.files,
    load: loadCub200,
  },
};

export function isStandardDatasetId(id: string): id is StandardDatasetId {
  return (STANDARD_DATASET_IDS as readonly string[]).includes(id);
}

/** The registry entry of `id`; an unknown id is an error listing the valid ones. */
export function standardDatasetInfo(id: string): StandardDatasetInfo {
  if (!isStandardDatasetId(id))
    throw new Error(
      `Unknown standard dataset ${JSON.stringify(id)}; the standard datasets are ${STANDARD_DATASET_IDS.join(', ')}`,
    );
  return STANDARD_DATASETS[id];
}

/**
 * Load a standard dataset by id (`cifar10`, `cifar100`, `flowers102`,
 * `pets`, `cub200`): downloaded and checked on first use, from the cache
 * after. `label: 'coarse'` applies to cifar100 only.
 */
export function loadStandardDataset(
  id: string,
  opts: LoadStandardDatasetOptions & Pick<LoadCifarOptions, 'label'> = {},
): Promise<StandardDataset> {
  let info: StandardDatasetInfo;
  try {
    info = standardDatasetInfo(id);
  } catch (err) {
    return Promise.reject(err);
  }
  if (id === 'cifar100') return loadCifar100(opts);
  if (id === 'cifar10') return loadCifar10(opts); // refuses label: 'coarse' itself
  if (opts.label !== undefined)
    return Promise.reject(
      new Error(`${info.title}: the label option is for cifar100 (fine or coarse classes)`),
    );
  return info.load(opts);
}
