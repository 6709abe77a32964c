import * as tf from '@tensorflow/tfjs-core';
import type { Params } from '@transferlab/core';
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

/** −mean_b Σ_k softmax(teacher/T)_k · log softmax(student/T)_k (Li & Hoiem's L_old, no T² factor). */
export function distillationLoss(
  student: tf.Tensor,
  teacher: tf.Tensor,
  temperature: number,
): tf.Scalar {
  const target = tf.softmax(tf.div(teacher, temperature));
  return tf.neg(
    tf.mean(tf.sum(tf.mul(target, tf.logSoftmax(tf.div(student, temperature))), 1)),
  ) as tf.Scalar;
}
