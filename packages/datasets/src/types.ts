/**
 * A labelled dataset held in plain typed arrays: `x` is row-major with
 * `shape` per example (e.g. [28, 28, 1] for images in NHWC order, [d] for
 * vectors), `y` holds class indices in [0, numClasses).
 */
export interface Dataset {
  readonly name: string;
  readonly x: Float32Array;
  readonly y: Int32Array;
  /** Shape of one example. */
  readonly shape: readonly number[];
  readonly numClasses: number;
  /** Optional human-readable class names, index = label. */
  readonly classNames?: readonly string[];
}

export interface TargetSplits {
  readonly train: Dataset;
  readonly val: Dataset;
  readonly test: Dataset;
}

/** A source task with plenty of data and a data-scarce target task. */
export interface TaskPair {
  readonly id: string;
  readonly description: string;
  readonly source: { readonly train: Dataset };
  readonly target: TargetSplits;
  /** The seed the pair was built with, when it came from a seeded builder. */
  readonly seed?: number;
  /** Labelled target examples per class in `target.train`, when fixed by the builder. */
  readonly labelsPerClass?: number;
}

export function exampleSize(ds: Pick<Dataset, 'shape'>): number {
  return ds.shape.reduce((a, b) => a * b, 1);
}

export function datasetSize(ds: Pick<Dataset, 'y'>): number {
  return ds.y.length;
}
