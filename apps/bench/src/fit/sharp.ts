/**
 * sharp, for writing images (test folders, the stream-memory benchmark's
 * photos). It is a dependency of @transferlab/datasets, not of the bench, so
 * it is resolved from where that package lives: in this workspace and in an
 * installed copy alike.
 */
import { createRequire } from 'node:module';

export interface SharpImage {
  resize(width: number, height: number, opts?: { kernel?: string; fit?: string }): SharpImage;
  png(): SharpImage;
  jpeg(opts: { quality: number; chromaSubsampling?: string }): SharpImage;
  toFile(path: string): Promise<unknown>;
  toBuffer(): Promise<Buffer>;
}

export type Sharp = (
  input: Buffer | Uint8Array,
  opts: { raw: { width: number; height: number; channels: 1 | 2 | 3 | 4 } },
) => SharpImage;

let cached: Sharp | undefined;

export function loadSharp(): Sharp {
  cached ??= createRequire(import.meta.resolve('@transferlab/datasets'))('sharp') as Sharp;
  return cached;
}
