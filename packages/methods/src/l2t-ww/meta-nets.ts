import * as tf from '@tensorflow/tfjs-core';
import type { Params, Rng } from '@transferlab/core';
import type { TapPair } from '../shared/feature-transfer.js';

/** The activation of the *where* net: relu6 (the reference code's default), relu or softplus. */
export type WhereActivation = 'relu6' | 'relu' | 'softplus';

export const WHERE_ACTIVATIONS: readonly WhereActivation[] = ['relu6', 'relu', 'softplus'];

const whatW = (i: number) => `what.${i}.weight`;
const whatB = (i: number) => `what.${i}.bias`;
const whereW = (i: number) => `where.${i}.weight`;
const whereB = (i: number) => `where.${i}.bias`;

/**
 * The meta-networks, one pair of small nets per (source, target) pair, all
 * reading the globally average-pooled source map [N, C_src]:
 * - *what*: Linear(C_src → C_src), weight and bias zero (uniform channel
 *   weights at the start), softmax over channels;
 * - *where*: Linear(C_src → 1), weight PyTorch's default (uniform
 *   ±1/√C_src), bias `whereBiasInit` (1 in the reference code), then the
 *   activation: λ ≥ 0 per example.
 * A disabled net has no parameters (uniform weights, λ = 1).
 */
export function initMetaNets(
  pairs: readonly TapPair[],
  opts: { learnWhat: boolean; learnWhere: boolean; whereBiasInit: number },
  rng: Rng,
): Params {
  const out: Record<string, tf.Tensor> = {};
  for (const p of pairs) {
    const c = p.sourceShape[2];
    if (opts.learnWhat) {
      out[whatW(p.index)] = tf.zeros([c, c]);
      out[whatB(p.index)] = tf.zeros([c]);
    }
    if (opts.learnWhere) {
      const r = rng.derive(whereW(p.index));
      const bound = 1 / Math.sqrt(c);
      out[whereW(p.index)] = tf.tensor2d(
        Float32Array.from({ length: c }, () => (2 * r.next() - 1) * bound),
        [c, 1],
      );
      out[whereB(p.index)] = tf.fill([1], opts.whereBiasInit);
    }
  }
  return out;
}

function activate(x: tf.Tensor, a: WhereActivation): tf.Tensor {
  switch (a) {
    case 'relu6':
      return tf.relu6(x);
    case 'relu':
      return tf.relu(x);
    case 'softplus':
      return tf.softplus(x);
  }
}

/**
 * Channel weights [N, C_src] and λ [N] per pair from the pooled source maps
 * (keyed by source tap). Null when the corresponding net is disabled. These
 * depend on the meta-parameters only (never on the target weights), so the
 * softmax and activation here are differentiated once: first order, safe.
 */
export function metaOutputs(
  meta: Params,
  pairs: readonly TapPair[],
  pooled: Readonly<Record<string, tf.Tensor2D>>,
  activation: WhereActivation,
): { weights: tf.Tensor2D[] | null; lambdas: tf.Tensor1D[] | null } {
  const learnWhat = pairs.length > 0 && whatW(0) in meta;
  const learnWhere = pairs.length > 0 && whereW(0) in meta;
  const input = (p: TapPair) => pooled[p.source] as tf.Tensor2D;
  const dense = (p: TapPair, w: string, b: string) =>
    tf.add(tf.matMul(input(p), meta[w] as tf.Tensor2D), meta[b] as tf.Tensor);
  return {
    weights: learnWhat
      ? pairs.map((p) => tf.softmax(dense(p, whatW(p.index), whatB(p.index))) as tf.Tensor2D)
      : null,
    lambdas: learnWhere
      ? pairs.map(
          (p) =>
            tf.reshape(
              activate(dense(p, whereW(p.index), whereB(p.index)), activation),
              [-1],
            ) as tf.Tensor1D,
        )
      : null,
  };
}
