import * as tf from '@tensorflow/tfjs-core';
import type { Params, Rng } from '@transferlab/core';

/** A linear classifier on flattened features: logits = features · W + b. */
export interface LinearHead {
  readonly prefix: string;
  readonly inDim: number;
  readonly numClasses: number;
  readonly paramNames: readonly string[];
  init(rng: Rng): Params;
  apply(params: Params, features: tf.Tensor): tf.Tensor;
}

export function linearHead(inDim: number, numClasses: number, prefix = 'head'): LinearHead {
  if (!(inDim > 0 && numClasses > 1))
    throw new Error(`linearHead: need inDim > 0 and numClasses > 1, got ${inDim}, ${numClasses}`);
  const w = `${prefix}.weight`;
  const b = `${prefix}.bias`;
  return {
    prefix,
    inDim,
    numClasses,
    paramNames: [w, b],
    init(rng) {
      return {
        [w]: tf.tensor(rng.derive(w).normalArray(inDim * numClasses, Math.sqrt(1 / inDim)), [
          inDim,
          numClasses,
        ]),
        [b]: tf.zeros([numClasses]),
      };
    },
    apply(params, features) {
      const W = params[w];
      const B = params[b];
      if (!W || !B) throw new Error(`linear head "${prefix}": missing ${w} or ${b}`);
      const flat =
        features.rank === 2 ? features : tf.reshape(features, [features.shape[0] as number, -1]);
      return tf.add(tf.matMul(flat as tf.Tensor2D, W as tf.Tensor2D), B);
    },
  };
}
