import * as tf from '@tensorflow/tfjs-core';

/**
 * Mean softmax cross-entropy of `logits` [N, C] against integer `labels` [N].
 * Built from one-hot × log-softmax rather than a gather, because the gather's
 * gradient needs a kernel (UnsortedSegmentSum) the wasm backend lacks and
 * one-hot keeps the op set small for the compiled path.
 */
export function softmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const numClasses = logits.shape[1] as number;
    const oneHot = tf.oneHot(tf.cast(labels, 'int32') as tf.Tensor1D, numClasses);
    return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), 1))) as tf.Scalar;
  });
}

/** Mean squared error. */
export function meanSquaredError(pred: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.square(tf.sub(pred, target))) as tf.Scalar);
}
