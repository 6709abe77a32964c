import * as tf from '@tensorflow/tfjs-core';
import type { Params } from '@transferlab/core';
import type { LossOps } from '../shared/loss-ops.js';
import type { MethodContext } from '../types.js';

/** Parameter prefix of the source ("old task") head, as the bench's pre-training names it. */
export const LWF_SOURCE_HEAD = 'source_head';

const ID = 'lwf';

/**
 * The source head's weights from the context (`sourceHead`, else inside
 * `pretrained`), checked against the features and `sourceNumClasses`.
 */
export function sourceHeadOf(
  ctx: Pick<MethodContext<unknown>, 'sourceHead' | 'pretrained' | 'sourceNumClasses'>,
  featureDim: number,
): Params {
  const w = `${LWF_SOURCE_HEAD}.weight`;
  const b = `${LWF_SOURCE_HEAD}.bias`;
  const from = ctx.sourceHead ?? ctx.pretrained;
  const weight = from?.[w];
  const bias = from?.[b];
  if (!weight || !bias) {
    throw new Error(
      `method "${ID}": needs the source network's head (${w}, ${b}) to distil its outputs, and the context has none. The runner passes only the pretrained backbone today; it must also pass the head that source pre-training learned (bench: pretrainSource(...).sourceHead) as MethodContext.sourceHead, or inside \`pretrained\` under those names`,
    );
  }
  if (weight.rank !== 2 || weight.shape[0] !== featureDim || bias.shape[0] !== weight.shape[1]) {
    throw new Error(
      `method "${ID}": source head shapes [${weight.shape}] / [${bias.shape}] do not fit features of size ${featureDim}`,
    );
  }
  const classes = weight.shape[1] as number;
  if (ctx.sourceNumClasses !== undefined && ctx.sourceNumClasses !== classes) {
    throw new Error(
      `method "${ID}": the source head has ${classes} outputs but sourceNumClasses is ${ctx.sourceNumClasses}`,
    );
  }
  return { [w]: weight, [b]: bias };
}

/** The ops the distillation term needs: a subset of `LossOps`, so it is written once for both engines. */
export type DistillationOps<T> = Pick<
  LossOps<T>,
  'scale' | 'mul' | 'sum' | 'mean' | 'softmax' | 'logSoftmax'
>;

/**
 * −mean_b Σ_k softmax(teacher/T)_k · log softmax(student/T)_k (Li & Hoiem's
 * L_old, no T² factor), once for both engines. The teacher is a target: pass
 * it from the frozen network (no gradient) or detached. Logits are scaled by
 * 1/T: exactly x/T for a power-of-two T (the default 2), else within an ulp.
 */
export function distillation<T>(
  ops: DistillationOps<T>,
  student: T,
  teacher: T,
  temperature: number,
): T {
  const target = ops.softmax(ops.scale(teacher, 1 / temperature));
  const logProbs = ops.logSoftmax(ops.scale(student, 1 / temperature));
  return ops.scale(ops.mean(ops.sum(ops.mul(target, logProbs), 1)), -1);
}

/** tfjs's `DistillationOps`, as `tfjsLossOps` maps them. */
const tfjsOps: DistillationOps<tf.Tensor> = {
  scale: (a, s) => tf.mul(a, s),
  mul: (a, b) => tf.mul(a, b),
  sum: (a, axis) => (axis === undefined ? tf.sum(a) : tf.sum(a, axis, true)),
  mean: (a, axis) => (axis === undefined ? tf.mean(a) : tf.mean(a, axis, true)),
  softmax: (a) => tf.softmax(a),
  logSoftmax: (a) => tf.logSoftmax(a),
};

/** `distillation` on tfjs tensors: the term on its own, for callers and tests. */
export function distillationLoss(
  student: tf.Tensor,
  teacher: tf.Tensor,
  temperature: number,
): tf.Scalar {
  return distillation(tfjsOps, student, teacher, temperature) as tf.Scalar;
}
