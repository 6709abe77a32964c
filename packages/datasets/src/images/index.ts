export * from './augment.js';
export * from './decode.js';
export * from './image-folder.js';
export type { CropBox, PixelImage } from './resample.js';
export * from './stream.js';
