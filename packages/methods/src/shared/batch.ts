import * as tf from '@tensorflow/tfjs-core';
import type { Batch } from '../types.js';

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * A batch over typed arrays whose tensors are created on first access. The
 * tensors are `tf.keep`-ed: one first read inside a method's `tf.tidy` must
 * outlive that tidy (the batch, not the tidy, owns it).
 */
class LazyBatch implements Batch {
  readonly n: number;
  readonly shape: readonly number[];
  #xData: Float32Array | undefined;
  #yData: Int32Array | undefined;
  #x: tf.Tensor | undefined;
  #y: tf.Tensor | undefined;
  /** Tensors this batch created (and so frees); tensors handed in belong to the caller. */
  #created: tf.Tensor[] = [];

  constructor(
    n: number,
    shape: readonly number[],
    data: { xData?: Float32Array; yData?: Int32Array; x?: tf.Tensor; y?: tf.Tensor },
  ) {
    this.n = n;
    this.shape = shape;
    this.#xData = data.xData;
    this.#yData = data.yData;
    this.#x = data.x;
    this.#y = data.y;
  }

  get xData(): Float32Array {
    if (!this.#xData) {
      // From a tensor handed in: a copy (a backend may hand out its own storage).
      this.#xData = Float32Array.from((this.#x as tf.Tensor).dataSync());
    }
    return this.#xData;
  }

  get yData(): Int32Array {
    if (!this.#yData) this.#yData = Int32Array.from((this.#y as tf.Tensor).dataSync());
    return this.#yData;
  }

  get x(): tf.Tensor {
    if (!this.#x) {
      this.#x = tf.keep(tf.tensor(this.xData, [this.n, ...this.shape], 'float32'));
      this.#created.push(this.#x);
    }
    return this.#x;
  }

  get y(): tf.Tensor {
    if (!this.#y) {
      this.#y = tf.keep(tf.tensor1d(this.yData, 'int32'));
      this.#created.push(this.#y);
    }
    return this.#y;
  }

  dispose(): void {
    for (const t of this.#created) {
      t.dispose();
      if (this.#x === t) this.#x = undefined;
      if (this.#y === t) this.#y = undefined;
    }
    this.#created = [];
  }
}

/**
 * A batch of `yData.length` examples of shape `shape` (inputs `xData`,
 * row-major). No tensor is made until `x` or `y` is read; `disposeBatch`
 * frees the ones that were. The arrays are taken over, not copied: do not
 * change them while the batch lives.
 */
export function createBatch(
  xData: Float32Array,
  yData: Int32Array,
  shape: readonly number[],
): Batch {
  const n = yData.length;
  if (xData.length !== n * size(shape)) {
    throw new Error(
      `createBatch: ${n} labels of examples of shape [${shape}] need ${n * size(shape)} input values, got ${xData.length}`,
    );
  }
  return new LazyBatch(n, [...shape], { xData, yData });
}

/**
 * A batch over existing tensors: `x` [n, ...shape] and labels `y` [n]. The
 * tensors stay the caller's (`disposeBatch` leaves them); `xData` and
 * `yData` are read from them on first access.
 */
export function batchFromTensors(x: tf.Tensor, y: tf.Tensor): Batch {
  const n = x.shape[0];
  if (x.rank < 1 || y.rank !== 1 || y.shape[0] !== n) {
    throw new Error(
      `batchFromTensors: x [n, ...shape] and y [n] must hold the same number of examples, got [${x.shape}] and [${y.shape}]`,
    );
  }
  return new LazyBatch(n as number, x.shape.slice(1), { x, y });
}

/**
 * Frees the tensors `b` created (a batch from `createBatch` whose `x` or
 * `y` was read); tensors handed to `batchFromTensors` stay the caller's.
 * The batch stays usable: reading `x` again creates a new tensor.
 */
export function disposeBatch(b: Batch | undefined): void {
  if (b instanceof LazyBatch) b.dispose();
}
