import * as tf from '@tensorflow/tfjs-core';
import { softmaxCrossEntropy } from '@transferlab/core';

/**
 * DELTA's supervised channel attention (Li et al. 2019, §3.3), from the
 * features `features` [n, H·W·C] (channel last, as tfjs lays maps out) of
 * the pretrained network on the target training set and a linear head
 * (`weight` [H·W·C, K], `bias`) fitted on them: each channel's importance is
 * the rise of the head's cross-entropy when the channel is zeroed; the rises
 * are standardised over the channels and softened, w = softmax(z / 5), as
 * the authors' code does. Sums to 1. Channels that change nothing
 * (std 0) get uniform weights. A tfjs computation, run once before training.
 */
export function channelAttention(args: {
  features: tf.Tensor2D;
  labels: tf.Tensor1D;
  weight: tf.Tensor2D;
  bias: tf.Tensor1D;
  channels: number;
}): Float32Array {
  const { features: f, weight: w, channels: c } = args;
  const [n, dim] = f.shape;
  const classes = w.shape[1];
  const hw = dim / c;
  return tf.tidy(() => {
    const logits = tf.add(tf.matMul(f, w), args.bias);
    const base = softmaxCrossEntropy(logits, args.labels);
    // Channel j's share of the logits, [C, n, K]: zeroing j subtracts it.
    const share = tf.matMul(
      tf.transpose(tf.reshape(f, [n, hw, c]), [2, 0, 1]),
      tf.transpose(tf.reshape(w, [hw, c, classes]), [1, 0, 2]),
    );
    const logProbs = tf.logSoftmax(tf.sub(tf.expandDims(logits, 0), share));
    const onehot = tf.oneHot(tf.cast(args.labels, 'int32'), classes);
    const losses = tf.neg(tf.mean(tf.sum(tf.mul(logProbs, onehot), 2), 1));
    const rise = tf.sub(losses, base);
    const { mean, variance } = tf.moments(rise);
    const std = Math.sqrt(variance.dataSync()[0] as number);
    if (!(std > 1e-12)) return new Float32Array(c).fill(1 / c);
    return tf.softmax(tf.div(tf.sub(rise, mean), 5 * std)).dataSync() as Float32Array;
  });
}

/**
 * Per-feature weights of the distance, C · w_c / (H·W) for every position
 * of channel c (channel last): the authors' c · W_j ‖FM_j − FM⁰_j‖² / (h·w).
 */
export function featureWeights(attention: Float32Array, featureDim: number): Float32Array {
  const c = attention.length;
  const hw = featureDim / c;
  return Float32Array.from(
    { length: featureDim },
    (_, k) => (c * (attention[k % c] as number)) / hw,
  );
}
