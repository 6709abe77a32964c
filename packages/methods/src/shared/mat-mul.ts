import * as tf from '@tensorflow/tfjs-core';

/**
 * a @ b (2-D) whose gradients are plain matmuls of explicitly transposed
 * operands, recursively. Same values as tf.matMul; it exists for speed: on
 * wasm, tf.matMul's gradient uses the transposeA/transposeB flags, which
 * run ~5–8× slower than a transpose followed by a plain matmul (measured
 * 15 ms vs 2 ms for [25088, 32] × [32, 16]). Second-order safe: L2T-ww's
 * look-ahead differentiates through it (dense layers, connectors).
 */
export function matMulFast(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const ai = args[0] as tf.Tensor2D;
    const bi = args[1] as tf.Tensor2D;
    (args[2] as tf.GradSaveFunc)([ai, bi]);
    return {
      value: tf.matMul(ai, bi),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const as = saved[0] as tf.Tensor2D;
        const bs = saved[1] as tf.Tensor2D;
        const d = dy as tf.Tensor2D;
        return [matMulFast(d, tf.transpose(bs)), matMulFast(tf.transpose(as), d)];
      },
    };
  });
  return op(a, b) as tf.Tensor2D;
}
