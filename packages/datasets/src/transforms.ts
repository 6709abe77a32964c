import { type Tensor, type Tensor1D, tensor, tensor1d } from '@tensorflow/tfjs-core';
import type { Rng } from '@transferlab/core';
import { type Dataset, exampleSize } from './types.js';

// Every function here is pure: it returns a new Dataset with fresh arrays and
// never writes to its input.

function className(ds: Dataset, c: number): string {
  const name = ds.classNames?.[c];
  return name !== undefined && name !== String(c) ? `${c} ("${name}")` : String(c);
}

function withClassNames(classNames: readonly string[] | undefined): {
  classNames?: readonly string[];
} {
  return classNames ? { classNames } : {};
}

/** Number of examples of each class, indexed by label (length `numClasses`). */
export function classCounts(ds: Dataset): number[] {
  const counts = new Array<number>(ds.numClasses).fill(0);
  for (let i = 0; i < ds.y.length; i++) {
    const label = ds.y[i] as number;
    if (label < 0 || label >= ds.numClasses || !Number.isInteger(label)) {
      throw new Error(`${ds.name}: label #${i} is ${label}, outside 0..${ds.numClasses - 1}`);
    }
    counts[label] = (counts[label] as number) + 1;
  }
  return counts;
}

/** Example indices grouped by class: `result[c]` lists the indices with label c, ascending. */
export function indicesByClass(ds: Dataset): Int32Array[] {
  const counts = classCounts(ds);
  const out = counts.map((n) => new Int32Array(n));
  const fill = new Array<number>(ds.numClasses).fill(0);
  for (let i = 0; i < ds.y.length; i++) {
    const label = ds.y[i] as number;
    const k = fill[label] as number;
    (out[label] as Int32Array)[k] = i;
    fill[label] = k + 1;
  }
  return out;
}

/**
 * The examples at `indices`, in that order (repeats allowed). Throws on an
 * empty list or an index outside the dataset.
 */
export function subset(ds: Dataset, indices: ArrayLike<number>, name = ds.name): Dataset {
  const n = ds.y.length;
  if (indices.length === 0)
    throw new Error(`subset of ${ds.name}: no indices given (the result would be empty)`);
  const size = exampleSize(ds);
  const x = new Float32Array(indices.length * size);
  const y = new Int32Array(indices.length);
  for (let j = 0; j < indices.length; j++) {
    const i = indices[j] as number;
    if (!Number.isInteger(i) || i < 0 || i >= n) {
      throw new Error(`subset of ${ds.name}: index ${i} (position ${j}) is outside 0..${n - 1}`);
    }
    x.set(ds.x.subarray(i * size, (i + 1) * size), j * size);
    y[j] = ds.y[i] as number;
  }
  return { ...ds, name, x, y, shape: [...ds.shape] };
}

export interface SelectClassesOptions {
  /**
   * true (default): label `classes[j]` becomes j, numClasses becomes
   * `classes.length` and classNames follow. false: labels, numClasses and
   * classNames are kept.
   */
  readonly relabel?: boolean;
}

/**
 * Keep only the examples whose label is in `classes` (original order of
 * examples). Every listed class must occur in the dataset.
 */
export function selectClasses(
  ds: Dataset,
  classes: readonly number[],
  opts: SelectClassesOptions = {},
): Dataset {
  const relabel = opts.relabel ?? true;
  if (classes.length === 0) throw new Error(`selectClasses on ${ds.name}: no classes given`);
  const map = new Int32Array(ds.numClasses).fill(-1);
  classes.forEach((c, j) => {
    if (!Number.isInteger(c) || c < 0 || c >= ds.numClasses) {
      throw new Error(`selectClasses on ${ds.name}: class ${c} is outside 0..${ds.numClasses - 1}`);
    }
    if ((map[c] as number) !== -1)
      throw new Error(`selectClasses on ${ds.name}: class ${c} is listed twice`);
    map[c] = j;
  });
  const counts = classCounts(ds);
  for (const c of classes) {
    if (counts[c] === 0)
      throw new Error(
        `selectClasses on ${ds.name}: class ${className(ds, c)} is not present in the dataset`,
      );
  }
  const keep: number[] = [];
  for (let i = 0; i < ds.y.length; i++) if ((map[ds.y[i] as number] as number) !== -1) keep.push(i);
  const name = `${ds.name}[classes ${classes.join(',')}]`;
  const picked = subset(ds, keep, name);
  if (!relabel) return picked;
  const y = picked.y.map((label) => map[label] as number);
  const names = ds.classNames ? classes.map((c) => ds.classNames?.[c] ?? String(c)) : undefined;
  const { classNames: _dropped, ...rest } = picked;
  return { ...rest, y, numClasses: classes.length, ...withClassNames(names) };
}

/**
 * Size of one part in `stratifiedSplit`:
 * - an integer k ≥ 1: exactly k examples from every class;
 * - a fraction f with 0 < f < 1: about f·n_c examples from every class c
 *   (rounded; the fractions of all parts must sum to at most 1);
 * - 'rest': whatever is left of every class after the other parts (at most one part).
 */
/**
 * Give every example a new label `mapping[oldLabel]` (a coarser or a
 * different labelling of the same inputs, e.g. digit → parity). Every old
 * class must be mapped, and every new class must receive at least one old one.
 */
export function mapLabels(
  ds: Dataset,
  mapping: readonly number[],
  classNames: readonly string[],
): Dataset {
  if (mapping.length !== ds.numClasses) {
    throw new Error(
      `mapLabels on ${ds.name}: mapping has ${mapping.length} entries for ${ds.numClasses} classes`,
    );
  }
  const numClasses = classNames.length;
  const hit = new Array<boolean>(numClasses).fill(false);
  mapping.forEach((m, c) => {
    if (!Number.isInteger(m) || m < 0 || m >= numClasses) {
      throw new Error(
        `mapLabels on ${ds.name}: class ${c} maps to ${m}, outside 0..${numClasses - 1}`,
      );
    }
    hit[m] = true;
  });
  const empty = hit.findIndex((h) => !h);
  if (empty !== -1)
    throw new Error(
      `mapLabels on ${ds.name}: no class maps to new class ${empty} (${classNames[empty]})`,
    );
  const y = ds.y.map((label) => mapping[label] as number);
  return {
    ...ds,
    name: `${ds.name}[relabelled: ${classNames.join('/')}]`,
    y,
    numClasses,
    classNames: [...classNames],
  };
}

export type SplitSize = number | 'rest';

function describeSizes(sizes: Record<string, SplitSize>): string {
  return JSON.stringify(sizes);
}

/**
 * Like `stratifiedSplit`, but returns the example indices of each part
 * (ascending) instead of Datasets.
 */
export function stratifiedSplitIndices<K extends string>(
  ds: Dataset,
  sizes: Readonly<Record<K, SplitSize>>,
  rng: Rng,
  context = 'stratifiedSplit',
): Record<K, Int32Array> {
  const names = Object.keys(sizes) as K[];
  if (names.length === 0) throw new Error(`${context} on ${ds.name}: no parts requested`);
  let fractionSum = 0;
  let restName: K | undefined;
  for (const name of names) {
    const s = sizes[name] as SplitSize;
    if (s === 'rest') {
      if (restName !== undefined)
        throw new Error(
          `${context} on ${ds.name}: only one part may be 'rest' (got "${restName}" and "${name}")`,
        );
      restName = name;
    } else if (typeof s !== 'number' || !Number.isFinite(s) || s <= 0) {
      throw new Error(
        `${context} on ${ds.name}: size of part "${name}" must be a positive count, a fraction in (0, 1) or 'rest', got ${String(s)}`,
      );
    } else if (s < 1) {
      fractionSum += s;
    } else if (!Number.isInteger(s)) {
      throw new Error(
        `${context} on ${ds.name}: size of part "${name}" is ${s}: a count must be an integer, a fraction must be below 1`,
      );
    }
  }
  if (fractionSum > 1 + 1e-9) {
    throw new Error(
      `${context} on ${ds.name}: fractions sum to ${fractionSum}, more than 1 (sizes ${describeSizes(sizes)})`,
    );
  }
  const byClass = indicesByClass(ds);
  const parts = new Map<K, number[]>(names.map((name) => [name, []]));
  byClass.forEach((members, c) => {
    const n = members.length;
    if (n === 0) return; // only classes present in the data are stratified over
    const perm = rng.permutation(n);
    // Fractions use cumulative rounding so that together they never exceed n.
    const take = new Map<K, number>();
    let cum = 0;
    let used = 0;
    for (const name of names) {
      const s = sizes[name] as SplitSize;
      if (s === 'rest') continue;
      if (s >= 1) {
        take.set(name, s);
      } else {
        const from = Math.round(cum * n);
        cum += s;
        take.set(name, Math.round(Math.min(cum, 1) * n) - from);
      }
      used += take.get(name) as number;
    }
    if (used > n) {
      const wanted = names
        .filter((name) => name !== restName)
        .map((name) => `${name}=${take.get(name)}`)
        .join(', ');
      throw new Error(
        `${context} on ${ds.name}: class ${className(ds, c)} has only ${n} examples, but the parts need ${used} (${wanted})`,
      );
    }
    if (restName !== undefined) take.set(restName, n - used);
    let pos = 0;
    for (const name of names) {
      const k = take.get(name) as number;
      const out = parts.get(name) as number[];
      for (let j = 0; j < k; j++) out.push(members[perm[pos + j] as number] as number);
      pos += k;
    }
  });
  const result = {} as Record<K, Int32Array>;
  for (const name of names) {
    const idx = Int32Array.from(parts.get(name) as number[]).sort();
    if (idx.length === 0) {
      throw new Error(
        `${context} on ${ds.name}: part "${name}" would be empty (sizes ${describeSizes(sizes)}, class counts [${classCounts(ds).join(', ')}])`,
      );
    }
    result[name] = idx;
  }
  return result;
}

/**
 * Split `ds` into disjoint named parts, stratified by class: each size is
 * applied to every class separately (a count k means k per class; a fraction
 * f means round(f·n_c) per class c, proportional to the class's size), see
 * `SplitSize`. Classes absent from the data are skipped. Within each part,
 * examples keep their original order. Draws one permutation per present class
 * from `rng`, in class order.
 */
export function stratifiedSplit<K extends string>(
  ds: Dataset,
  sizes: Readonly<Record<K, SplitSize>>,
  rng: Rng,
): Record<K, Dataset> {
  const idx = stratifiedSplitIndices(ds, sizes, rng);
  const result = {} as Record<K, Dataset>;
  for (const name of Object.keys(idx) as K[])
    result[name] = subset(ds, idx[name], `${ds.name}/${name}`);
  return result;
}

/**
 * Exactly `k` random examples of every class present in `ds` (k labels per
 * class). Throws naming the class when it has fewer than `k` examples.
 */
export function subsamplePerClass(ds: Dataset, k: number, rng: Rng): Dataset {
  if (!Number.isInteger(k) || k < 1)
    throw new Error(`subsamplePerClass on ${ds.name}: k must be a positive integer, got ${k}`);
  const counts = classCounts(ds);
  counts.forEach((n, c) => {
    if (n > 0 && n < k) {
      throw new Error(
        `subsamplePerClass on ${ds.name}: class ${className(ds, c)} has only ${n} examples, fewer than k=${k}`,
      );
    }
  });
  const { sample } = stratifiedSplitIndices(ds, { sample: k }, rng, 'subsamplePerClass');
  return subset(ds, sample, `${ds.name}/${k}-per-class`);
}

/**
 * A stratified random fraction of `ds`: round(fraction·n_c) examples of every
 * class c. `fraction` must be in (0, 1]; 1 returns a copy.
 */
export function subsampleFraction(ds: Dataset, fraction: number, rng: Rng): Dataset {
  if (!(fraction > 0 && fraction <= 1)) {
    throw new Error(`subsampleFraction on ${ds.name}: fraction must be in (0, 1], got ${fraction}`);
  }
  const name = `${ds.name}/fraction-${fraction}`;
  if (fraction === 1)
    return subset(
      ds,
      Int32Array.from({ length: ds.y.length }, (_, i) => i),
      name,
    );
  const { sample } = stratifiedSplitIndices(ds, { sample: fraction }, rng, 'subsampleFraction');
  return subset(ds, sample, name);
}

/** One mean and standard deviation over every value of the dataset. */
export interface ScalarNormalization {
  readonly mean: number;
  readonly std: number;
}

/** Mean and standard deviation of each feature (length `exampleSize`). */
export interface PerFeatureNormalization {
  readonly mean: Float32Array;
  readonly std: Float32Array;
}

export type NormalizationStats = ScalarNormalization | PerFeatureNormalization;

export interface NormalizationOptions {
  /** Per-feature statistics instead of one scalar pair (default false). */
  readonly perFeature?: boolean;
  /**
   * A standard deviation below this is replaced by 1, so constant features
   * (e.g. always-black border pixels) map to 0 instead of dividing by 0.
   * Default 1e-6.
   */
  readonly minStd?: number;
}

/**
 * Population mean and standard deviation of `ds.x` (accumulated in float64).
 * Compute them on training data and apply them with `normalize` to every split.
 */
export function computeNormalization(
  ds: Dataset,
  opts: NormalizationOptions & { perFeature: true },
): PerFeatureNormalization;
export function computeNormalization(
  ds: Dataset,
  opts?: NormalizationOptions & { perFeature?: false },
): ScalarNormalization;
export function computeNormalization(ds: Dataset, opts?: NormalizationOptions): NormalizationStats;
export function computeNormalization(
  ds: Dataset,
  opts: NormalizationOptions = {},
): NormalizationStats {
  const minStd = opts.minStd ?? 1e-6;
  const n = ds.y.length;
  if (n === 0 || ds.x.length === 0)
    throw new Error(`computeNormalization on ${ds.name}: the dataset is empty`);
  if (!opts.perFeature) {
    let sum = 0;
    for (let i = 0; i < ds.x.length; i++) sum += ds.x[i] as number;
    const mean = sum / ds.x.length;
    let sq = 0;
    for (let i = 0; i < ds.x.length; i++) {
      const d = (ds.x[i] as number) - mean;
      sq += d * d;
    }
    const std = Math.sqrt(sq / ds.x.length);
    return { mean, std: std < minStd ? 1 : std };
  }
  const size = exampleSize(ds);
  const sum = new Float64Array(size);
  for (let i = 0; i < n; i++) {
    const off = i * size;
    for (let f = 0; f < size; f++) sum[f] = (sum[f] as number) + (ds.x[off + f] as number);
  }
  const mean = sum.map((s) => s / n);
  const sq = new Float64Array(size);
  for (let i = 0; i < n; i++) {
    const off = i * size;
    for (let f = 0; f < size; f++) {
      const d = (ds.x[off + f] as number) - (mean[f] as number);
      sq[f] = (sq[f] as number) + d * d;
    }
  }
  const std = new Float32Array(size);
  for (let f = 0; f < size; f++) {
    const s = Math.sqrt((sq[f] as number) / n);
    std[f] = s < minStd ? 1 : s;
  }
  return { mean: Float32Array.from(mean), std };
}

/** `(x - mean) / std`, elementwise (scalar stats) or per feature. */
export function normalize(ds: Dataset, stats: NormalizationStats): Dataset {
  const x = new Float32Array(ds.x.length);
  if (typeof stats.mean === 'number' && typeof stats.std === 'number') {
    const { mean, std } = stats;
    if (!Number.isFinite(mean) || !(std > 0))
      throw new Error(`normalize ${ds.name}: invalid stats mean=${mean}, std=${std}`);
    for (let i = 0; i < x.length; i++) x[i] = ((ds.x[i] as number) - mean) / std;
  } else if (typeof stats.mean !== 'number' && typeof stats.std !== 'number') {
    const size = exampleSize(ds);
    if (stats.mean.length !== size || stats.std.length !== size) {
      throw new Error(
        `normalize ${ds.name}: per-feature stats have ${stats.mean.length} means and ${stats.std.length} stds, but examples have ${size} features`,
      );
    }
    for (let f = 0; f < size; f++) {
      if (!((stats.std[f] as number) > 0))
        throw new Error(
          `normalize ${ds.name}: std of feature ${f} is ${stats.std[f]}, must be > 0`,
        );
    }
    for (let i = 0; i < x.length; i++) {
      const f = i % size;
      x[i] = ((ds.x[i] as number) - (stats.mean[f] as number)) / (stats.std[f] as number);
    }
  } else {
    throw new Error(
      `normalize ${ds.name}: mean and std must both be scalars or both be per-feature arrays`,
    );
  }
  return { ...ds, x, y: ds.y.slice(), shape: [...ds.shape] };
}

/**
 * All examples of `datasets`, in order. They must agree on example shape and
 * numClasses, and on classNames where more than one has them.
 */
export function concatDatasets(datasets: readonly Dataset[], name?: string): Dataset {
  const first = datasets[0];
  if (!first) throw new Error('concatDatasets: no datasets given');
  let classNames = first.classNames;
  for (const ds of datasets) {
    if (ds.shape.length !== first.shape.length || ds.shape.some((d, i) => d !== first.shape[i])) {
      throw new Error(
        `concatDatasets: ${ds.name} has example shape [${ds.shape.join(', ')}], ${first.name} has [${first.shape.join(', ')}]`,
      );
    }
    if (ds.numClasses !== first.numClasses) {
      throw new Error(
        `concatDatasets: ${ds.name} has ${ds.numClasses} classes, ${first.name} has ${first.numClasses}`,
      );
    }
    if (ds.classNames) {
      if (classNames && ds.classNames.some((c, i) => c !== classNames?.[i])) {
        throw new Error(
          `concatDatasets: ${ds.name} has class names [${ds.classNames.join(', ')}], which differ from [${classNames.join(', ')}]`,
        );
      }
      classNames ??= ds.classNames;
    }
  }
  const total = datasets.reduce((s, ds) => s + ds.y.length, 0);
  const size = exampleSize(first);
  const x = new Float32Array(total * size);
  const y = new Int32Array(total);
  let row = 0;
  for (const ds of datasets) {
    x.set(ds.x, row * size);
    y.set(ds.y, row);
    row += ds.y.length;
  }
  return {
    name: name ?? datasets.map((ds) => ds.name).join('+'),
    x,
    y,
    shape: [...first.shape],
    numClasses: first.numClasses,
    ...withClassNames(classNames),
  };
}

/**
 * tfjs tensors for the examples at `indices` (default: all): `x` of shape
 * [n, ...shape] float32 and `y` int32 labels. The caller owns (and disposes)
 * them; a tfjs backend must be initialised.
 */
export function toTensors(ds: Dataset, indices?: ArrayLike<number>): { x: Tensor; y: Tensor1D } {
  const n = ds.y.length;
  if (indices === undefined) {
    // Copies, so the tensors never alias the (possibly memoised, shared) dataset arrays.
    return {
      x: tensor(ds.x.slice(), [n, ...ds.shape], 'float32'),
      y: tensor1d(ds.y.slice(), 'int32'),
    };
  }
  if (indices.length === 0) throw new Error(`toTensors on ${ds.name}: no indices given`);
  const size = exampleSize(ds);
  const xs = new Float32Array(indices.length * size);
  const ys = new Int32Array(indices.length);
  for (let j = 0; j < indices.length; j++) {
    const i = indices[j] as number;
    if (!Number.isInteger(i) || i < 0 || i >= n)
      throw new Error(`toTensors on ${ds.name}: index ${i} is outside 0..${n - 1}`);
    xs.set(ds.x.subarray(i * size, (i + 1) * size), j * size);
    ys[j] = ds.y[i] as number;
  }
  return { x: tensor(xs, [indices.length, ...ds.shape], 'float32'), y: tensor1d(ys, 'int32') };
}

export interface BatchOptions {
  /** Drop the last batch when it is smaller than batchSize (default false). */
  readonly dropLast?: boolean;
}

/**
 * Mini-batches of example indices covering the dataset once in a random order.
 * The permutation is drawn from `rng` when `batches` is called, so each call
 * (epoch) gives a new order. Use with `toTensors(ds, batch)`.
 */
export function batches(
  ds: Dataset,
  batchSize: number,
  rng: Rng,
  opts: BatchOptions = {},
): Generator<Int32Array, void, undefined> {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(
      `batches on ${ds.name}: batchSize must be a positive integer, got ${batchSize}`,
    );
  }
  const n = ds.y.length;
  if (n === 0) throw new Error(`batches on ${ds.name}: the dataset is empty`);
  if (opts.dropLast && n < batchSize) {
    throw new Error(
      `batches on ${ds.name}: dropLast with batchSize ${batchSize} > ${n} examples would yield no batches`,
    );
  }
  const perm = rng.permutation(n);
  const end = opts.dropLast ? n - (n % batchSize) : n;
  return (function* () {
    for (let start = 0; start < end; start += batchSize)
      yield perm.slice(start, Math.min(start + batchSize, end));
  })();
}
