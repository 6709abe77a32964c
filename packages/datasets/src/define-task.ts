import type { TaskBuildOptions, TaskNormalization } from './tasks.js';
import { computeNormalization, type NormalizationStats, normalize } from './transforms.js';
import type { TaskPair } from './types.js';

// Helpers every task builder uses: check the seed, build, then normalise
// with statistics of the source training set; the default split sizes.

/** Apply `normalization` (see `TaskNormalization`) to every split of `pair`. */
export function normalizePair(pair: TaskPair, mode: TaskNormalization | undefined): TaskPair {
  if (mode === undefined || mode === 'none') return pair;
  if (mode !== 'source' && mode !== 'source-per-feature') {
    throw new Error(
      `task "${pair.id}": unknown normalization ${JSON.stringify(mode)}; use 'none', 'source' or 'source-per-feature'`,
    );
  }
  const stats: NormalizationStats = computeNormalization(pair.source.train, {
    perFeature: mode === 'source-per-feature',
  });
  return {
    ...pair,
    source: { train: normalize(pair.source.train, stats) },
    target: {
      train: normalize(pair.target.train, stats),
      val: normalize(pair.target.val, stats),
      test: normalize(pair.target.test, stats),
    },
  };
}

/** The `TaskBuildOptions` keys every task defined with `defineTask` accepts (besides `seed`). */
export const COMMON_TASK_OPTIONS: readonly string[] = [
  'labelsPerClass',
  'valPerClass',
  'testPerClass',
  'normalization',
  'fashionMnist',
  'sourceSize',
];

/**
 * A TaskSpec whose build function gets its own id and description, checks the
 * seed and applies `opts.normalization` after building (inputs are built
 * un-normalized). `extraOptions`: the build options it reads beyond
 * `COMMON_TASK_OPTIONS`, so that its `options` list is complete.
 */
export function defineTask<O extends TaskBuildOptions>(
  id: string,
  description: string,
  build: (opts: O, spec: { id: string; description: string }) => Promise<TaskPair>,
  extraOptions: readonly string[] = [],
): {
  readonly id: string;
  readonly description: string;
  readonly options: readonly string[];
  build(opts: O): Promise<TaskPair>;
} {
  const meta = { id, description };
  return {
    id,
    description,
    options: [...COMMON_TASK_OPTIONS, ...extraOptions],
    build: async (opts: O) => {
      if (!opts || !Number.isFinite(opts.seed))
        throw new Error(`task "${id}": build needs a finite numeric seed`);
      return normalizePair(await build(opts, meta), opts.normalization);
    },
  };
}

/** Split sizes with the package defaults (10 labels/class, 10 val/class, test = rest). */
export function splitDefaults(opts: TaskBuildOptions): {
  labelsPerClass: number;
  valPerClass: number;
  testPerClass?: number;
} {
  return {
    labelsPerClass: opts.labelsPerClass ?? 10,
    valPerClass: opts.valPerClass ?? 10,
    ...(opts.testPerClass !== undefined ? { testPerClass: opts.testPerClass } : {}),
  };
}
