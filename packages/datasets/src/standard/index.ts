export {
  CIFAR10_SOURCE,
  CIFAR100_SOURCE,
  type LoadCifarOptions,
  loadCifar10,
  loadCifar100,
} from './cifar.js';
export { CUB200_SOURCE, loadCub200 } from './cub200.js';
export type { DownloadProgress } from './download.js';
export { FLOWERS102_CLASS_NAMES, FLOWERS102_SOURCE, loadFlowers102 } from './flowers102.js';
export { loadOxfordPets, PETS_SOURCE } from './pets.js';
export {
  isStandardDatasetId,
  loadStandardDataset,
  STANDARD_DATASETS,
  type StandardDatasetInfo,
  standardDatasetInfo,
} from './registry.js';
export {
  type StandardFile,
  type StandardSource,
  type StandardSourceOptions,
  standardCacheDir,
} from './source.js';
export { DEFAULT_VAL_FRACTION, type StandardSplitOptions } from './splits.js';
export {
  type LoadStandardDatasetOptions,
  STANDARD_DATASET_IDS,
  type StandardArrayDataset,
  type StandardDataset,
  type StandardDatasetId,
  type StandardImageDataset,
} from './types.js';
