import { createRng } from '@transferlab/core';
import { stratifiedSplitIndices } from '../transforms.js';

/** Options of the seeded validation split drawn from an official training split. */
export interface StandardSplitOptions {
  /** Seed of the validation draw (default 0). */
  readonly seed?: number;
  /**
   * Fraction of each class of the official training split moved to val
   * (default 0.1; 0 leaves val empty). Ignored where the dataset has an
   * official validation split (Flowers-102).
   */
  readonly valFraction?: number;
}

export const DEFAULT_VAL_FRACTION = 0.1;

/**
 * Indices (ascending) of train and val drawn from `labels`, stratified by
 * class with round(valFraction · n_c) of each class c in val. Warns when a
 * class present in train has none in val.
 */
export function drawValidation(
  labels: Int32Array,
  classes: readonly string[],
  opts: StandardSplitOptions,
  name: string,
): { train: Int32Array; val: Int32Array; warnings: string[] } {
  const fraction = opts.valFraction ?? DEFAULT_VAL_FRACTION;
  if (!(typeof fraction === 'number' && fraction >= 0 && fraction < 1))
    throw new Error(`${name}: valFraction must be in [0, 1), got ${fraction}`);
  const all = Int32Array.from({ length: labels.length }, (_, i) => i);
  if (fraction === 0) return { train: all, val: new Int32Array(0), warnings: [] };
  const ds = {
    name,
    x: new Float32Array(0),
    y: labels,
    shape: [0],
    numClasses: classes.length,
    classNames: classes,
  };
  const rng = createRng(opts.seed ?? 0).derive('standard-val');
  let idx: Record<'train' | 'val', Int32Array>;
  try {
    idx = stratifiedSplitIndices(ds, { train: 'rest', val: fraction }, rng, 'stratified split');
  } catch (err) {
    throw new Error(
      `${name}: cannot draw a val split with valFraction ${fraction} (${(err as Error).message}); raise valFraction, or pass 0 for no val`,
    );
  }
  const inVal = new Set<number>();
  for (const i of idx.val) inVal.add(labels[i] as number);
  const inTrain = new Set<number>();
  for (const i of all) inTrain.add(labels[i] as number);
  const absent = [...inTrain].filter((c) => !inVal.has(c)).sort((a, b) => a - b);
  const warnings =
    absent.length > 0
      ? [
          `${name}: the val split (fraction ${fraction}) has no images of ${absent.length} class(es), e.g. "${classes[absent[0] as number]}" (too few in train)`,
        ]
      : [];
  return { train: idx.train, val: idx.val, warnings };
}
