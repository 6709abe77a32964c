/**
 * Inputs of the Task Transfer Analysis bound: labelled feature sets, their
 * validation (errors name the set, the class and the dimensions) and the
 * per-dataset standardisation the paper applies to frozen features.
 */
import {
  checkSameLength,
  type Dense,
  type DenseMatrix,
  type MatrixLike,
  toDense,
  toLabels,
} from '../estimators/matrix.js';

/** Frozen features [n, d] with integer labels 0..C−1 [n]. */
export interface LabelledFeatures {
  readonly features: MatrixLike;
  readonly labels: ArrayLike<number>;
}

/**
 * One task: a train split (fits the head, the standardiser and the transforms)
 * and an optional test split (the bound's terms are evaluated on it, as in the
 * authors' code; defaults to the train split). `numClasses` defaults to the
 * largest train label + 1; every class must have samples in every split.
 */
export interface TtaTask {
  readonly train: LabelledFeatures;
  readonly test?: LabelledFeatures;
  readonly numClasses?: number;
}

/** A validated set: Float64 features, labels, and the indices of each class. */
export interface LabelledSet {
  readonly x: Dense;
  readonly y: Int32Array;
  readonly numClasses: number;
  /** Sample indices per class (every class non-empty). */
  readonly byClass: readonly Int32Array[];
  /** Empirical class prior n_c / n. */
  readonly prior: Float64Array;
}

/**
 * Validates `data` as `name` (e.g. "source.train"): a non-empty finite matrix,
 * one integer label per row, labels in 0..numClasses−1 and every class with at
 * least one sample (the error names the class). `numClasses` defaults to the
 * largest label + 1.
 */
export function labelledSet(
  fn: string,
  name: string,
  data: LabelledFeatures | undefined,
  numClasses?: number,
): LabelledSet {
  if (data === undefined || data === null || typeof data !== 'object')
    throw new Error(`${fn}: ${name} is missing (expected { features, labels })`);
  if (data.features === undefined) throw new Error(`${fn}: ${name}.features is missing`);
  if (data.labels === undefined) throw new Error(`${fn}: ${name}.labels is missing`);
  const x = toDense(fn, `${name}.features`, data.features);
  const y = toLabels(fn, `${name}.labels`, data.labels);
  checkSameLength(fn, `${name}.features`, x.rows, `${name}.labels`, y.length);
  let max = 0;
  for (const v of y) if (v > max) max = v;
  const c = numClasses ?? max + 1;
  if (!Number.isInteger(c) || c < 1)
    throw new Error(`${fn}: numClasses of ${name} must be a positive integer, got ${numClasses}`);
  if (max >= c)
    throw new Error(
      `${fn}: ${name}.labels contains class ${max} but the task has ${c} classes (0..${c - 1})`,
    );
  const lists: number[][] = Array.from({ length: c }, () => []);
  y.forEach((v, i) => {
    (lists[v] as number[]).push(i);
  });
  lists.forEach((l, k) => {
    if (l.length === 0)
      throw new Error(
        `${fn}: ${name} has no samples of class ${k} (classes are 0..${c - 1}; every class needs samples)`,
      );
  });
  const prior = Float64Array.from(lists, (l) => l.length / y.length);
  return { x, y, numClasses: c, byClass: lists.map((l) => Int32Array.from(l)), prior };
}

/** Train and test sets of a task, validated together (same dimension, same classes). */
export interface TaskSets {
  readonly train: LabelledSet;
  readonly test: LabelledSet;
  readonly numClasses: number;
  readonly dim: number;
}

export function taskSets(fn: string, name: string, task: TtaTask | undefined): TaskSets {
  if (task === undefined || task === null || typeof task !== 'object')
    throw new Error(`${fn}: ${name} is missing (expected { train, test?, numClasses? })`);
  const train = labelledSet(fn, `${name}.train`, task.train, task.numClasses);
  const test =
    task.test === undefined
      ? train
      : labelledSet(fn, `${name}.test`, task.test, task.numClasses ?? train.numClasses);
  if (test.x.cols !== train.x.cols)
    throw new Error(
      `${fn}: ${name}.train has dimension ${train.x.cols} but ${name}.test has dimension ${test.x.cols}`,
    );
  return { train, test, numClasses: train.numClasses, dim: train.x.cols };
}

/** Per-feature standardisation z ↦ (z − mean) / scale, fitted on one set. */
export interface Standardizer {
  readonly mean: Float64Array;
  /** Population standard deviation per feature; 1 where the feature is constant. */
  readonly scale: Float64Array;
  /** Standardises the rows of X (same dimension as the fitted data). */
  transform(X: MatrixLike): DenseMatrix & { data: Float64Array };
}

/**
 * Fits a per-feature standardiser on X (like scikit-learn's StandardScaler,
 * which the authors' code uses: mean and population standard deviation, a
 * constant feature gets scale 1). The paper standardises source and target
 * features separately, each with the statistics of its own train split.
 */
export function fitStandardizer(X: MatrixLike): Standardizer {
  const fn = 'fitStandardizer';
  const x = toDense(fn, 'X', X);
  const { rows: n, cols: d } = x;
  const mean = new Float64Array(d);
  const scale = new Float64Array(d);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < d; k++) mean[k] = (mean[k] as number) + (x.data[i * d + k] as number) / n;
  for (let i = 0; i < n; i++)
    for (let k = 0; k < d; k++) {
      const v = (x.data[i * d + k] as number) - (mean[k] as number);
      scale[k] = (scale[k] as number) + (v * v) / n;
    }
  for (let k = 0; k < d; k++) {
    const s = Math.sqrt(scale[k] as number);
    // scikit-learn treats a variance below ~machine precision × mean² as zero.
    const tiny = 10 * Number.EPSILON * Math.max(1, Math.abs(mean[k] as number));
    scale[k] = s > tiny ? s : 1;
  }
  return {
    mean,
    scale,
    transform(Y: MatrixLike) {
      const y = toDense('Standardizer.transform', 'X', Y);
      if (y.cols !== d)
        throw new Error(
          `Standardizer.transform: X has dimension ${y.cols} but the standardiser was fitted on dimension ${d}`,
        );
      const data = new Float64Array(y.data.length);
      for (let i = 0; i < y.rows; i++)
        for (let k = 0; k < d; k++)
          data[i * d + k] =
            ((y.data[i * d + k] as number) - (mean[k] as number)) / (scale[k] as number);
      return { data, rows: y.rows, cols: d };
    },
  };
}

/** The task with both splits standardised by statistics of its train split. */
export function standardizeTask(sets: TaskSets): TaskSets {
  const st = fitStandardizer(sets.train.x);
  const train = { ...sets.train, x: st.transform(sets.train.x) };
  const test = sets.test === sets.train ? train : { ...sets.test, x: st.transform(sets.test.x) };
  return { ...sets, train, test };
}

/** Row-major copy of rows `idx` of x. */
export function takeRows(x: Dense, idx: ArrayLike<number>): Dense {
  const d = x.cols;
  const data = new Float64Array(idx.length * d);
  for (let r = 0; r < idx.length; r++) {
    const i = idx[r] as number;
    data.set(x.data.subarray(i * d, (i + 1) * d), r * d);
  }
  return { data, rows: idx.length, cols: d };
}
