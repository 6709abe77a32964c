import * as tf from '@tensorflow/tfjs-core';

/**
 * The identity whose gradient is zero: tfjs 4.22 has no `stopGradient`.
 * Lets one loss train a head on features without training the features.
 */
export const detach: (x: tf.Tensor) => tf.Tensor = tf.customGrad(
  (...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.clone(args[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  }),
);
