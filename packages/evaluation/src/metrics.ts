import * as tf from '@tensorflow/tfjs-core';

/** Fraction of rows whose arg-max matches the label. */
export function accuracy(logits: tf.Tensor, labels: tf.Tensor | Int32Array): number {
  return tf.tidy(() => {
    const y =
      labels instanceof Int32Array ? tf.tensor1d(labels, 'int32') : tf.cast(labels, 'int32');
    const n = logits.shape[0] as number;
    if (y.size !== n) throw new Error(`accuracy: ${n} predictions but ${y.size} labels`);
    if (n === 0) throw new Error('accuracy: no examples');
    const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32'));
    return (correct.dataSync()[0] as number) / n;
  });
}

/** Mean softmax cross-entropy (nats) of logits against integer labels. */
export function crossEntropy(logits: tf.Tensor, labels: tf.Tensor | Int32Array): number {
  return tf.tidy(() => {
    const y =
      labels instanceof Int32Array ? tf.tensor1d(labels, 'int32') : tf.cast(labels, 'int32');
    const n = logits.shape[0] as number;
    if (y.size !== n) throw new Error(`crossEntropy: ${n} predictions but ${y.size} labels`);
    const oneHot = tf.oneHot(y as tf.Tensor1D, logits.shape[1] as number);
    return -(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), 1)).dataSync()[0] as number);
  });
}

// Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom.
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145,
  2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048,
  2.045, 2.042,
];

/** The 0.975 quantile of Student's t with `df` degrees of freedom (table to 30, then interpolation to the normal). */
export function tQuantile975(df: number): number {
  if (!(df >= 1) || !Number.isInteger(df))
    throw new Error(`tQuantile975: df must be a positive integer, got ${df}`);
  if (df <= 30) return T975[df - 1] as number;
  // Cornish–Fisher style expansion around the normal quantile; exact to ~1e-3 for df > 30.
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2);
}

export interface MeanCI {
  mean: number;
  /** Half-width of the 95% confidence interval of the mean (Student's t); NaN for one value. */
  ci95: number;
  std: number;
  n: number;
}

/** Mean and 95% confidence interval over seeds. */
export function meanCI(values: readonly number[]): MeanCI {
  const n = values.length;
  if (n === 0) throw new Error('meanCI: no values');
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, ci95: Number.NaN, std: Number.NaN, n };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  const std = Math.sqrt(variance);
  return { mean, ci95: (tQuantile975(n - 1) * std) / Math.sqrt(n), std, n };
}
