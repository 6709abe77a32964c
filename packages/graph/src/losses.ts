/** Losses as graph fragments, built from ops that have gradient rules (so they differentiate twice). */
import { attr } from './attr.js';
import type { OnnxGraphBuilder } from './builder.js';
import { DT } from './proto.js';

/**
 * Mean softmax cross-entropy of `logits` [N, K] against int64 class indices
 * `labels` [N]: −(1/N) Σᵢ log softmax(logitsᵢ)[yᵢ], as core's
 * `softmaxCrossEntropy` and PyTorch's `cross_entropy`.
 */
export function softmaxCrossEntropy(g: OnnxGraphBuilder, logits: string, labels: string): string {
  const dims = g.dims(logits);
  const k = dims?.[1];
  if (dims?.length !== 2 || typeof k !== 'number')
    throw new Error(`softmaxCrossEntropy: logits must be [N, K] with K known, got [${dims}]`);
  const oneHot = g.op(
    'OneHot',
    [
      labels,
      g.int64Initializer(g.fresh('depth'), [k], []),
      g.initializer(g.fresh('onehot_values'), [0, 1], [2]),
    ],
    { axis: attr.int(-1) },
  );
  const logp = g.op('LogSoftmax', [logits], { axis: attr.int(1) });
  const picked = g.op('ReduceSum', [g.op('Mul', [oneHot, logp]), g.ints([1], 'axes')], {
    keepdims: attr.int(0),
  });
  return g.op('Neg', [
    g.op('ReduceMean', [picked], { axes: attr.ints([0]), keepdims: attr.int(0) }),
  ]);
}

/** Labels as the engine feeds them: int64. */
export function int64Labels(y: Int32Array | readonly number[]): BigInt64Array {
  const out = new BigInt64Array(y.length);
  for (let i = 0; i < y.length; i++) out[i] = BigInt(y[i] as number);
  return out;
}

export const LABEL_TYPE = DT.INT64;
