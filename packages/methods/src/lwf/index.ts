import * as tf from '@tensorflow/tfjs-core';
import {
  cloneParams,
  disposeOptimizerState,
  disposeParams,
  mergeParams,
  type Optimizer,
  type OptimizerState,
  type Params,
  softmaxCrossEntropy,
} from '@transferlab/core';
import { type Backbone, type LinearHead, linearHead } from '@transferlab/models';
import { normalizedTrainStep, trainsBatchNorm } from '../shared/batch-norm.js';
import {
  createOptimizer,
  type OptimConfig,
  scheduleFactor,
  validateOptimConfig,
} from '../shared/classifier.js';
import { mergeConfig, requireNonNegative, requirePositive } from '../shared/config.js';
import type { MethodContext, TransferMethod } from '../types.js';

export interface LwfConfig extends OptimConfig {
  /** T: softmax temperature of the distillation term (2 in the paper). */
  temperature: number;
  /** λ_o: weight of the distillation term (1 in the paper). */
  lambdaOld: number;
  /** Learning rate of the shared backbone relative to the heads'. */
  backboneLrMultiplier: number;
}

/** Parameter prefix of the source ("old task") head, as the bench's pre-training names it. */
export const LWF_SOURCE_HEAD = 'source_head';

/**
 * MethodContext plus the source head. The runner's context has no source
 * head yet: LwF reads it from `sourceHead` when the runner provides it, or
 * from `source_head.weight` / `source_head.bias` inside `pretrained`.
 */
export interface LwfContext extends MethodContext<LwfConfig> {
  readonly sourceHead?: Params;
}

export interface LwfState {
  readonly backbone: Backbone;
  readonly head: LinearHead;
  readonly oldHead: LinearHead;
  readonly config: LwfConfig;
  readonly optimizer: Optimizer;
  readonly trainable: readonly string[];
  readonly totalSteps: number;
  /** The student's normalisation runs in training mode (the backbone trains and has statistics). */
  readonly trainBatchNorm: boolean;
  /** Frozen copy of the original network (backbone + source head): the "recorded" old-task responses. */
  readonly original: Params;
  /** Shared backbone + new head `head.*` + old head `source_head.*`, all trained. */
  params: Params;
  optState: OptimizerState;
}

const ID = 'lwf';

function sourceHeadOf(ctx: LwfContext, featureDim: number): Params {
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

/**
 * Learning without Forgetting (Li & Hoiem, ECCV 2016; a baseline of the
 * L2T-ww paper): the source network's backbone is fine-tuned on the target
 * with a new head, while its old (source) head — trained too — is kept close
 * to the original network's outputs on the *target* inputs:
 *   loss = CE(new head) + λ_o · KD_T(old head ‖ original network).
 * The original network's responses, which the paper records before
 * training, are computed on the fly from a frozen copy (the same values:
 * no dropout or augmentation here). Defaults: T = 2, λ_o = 1 (the paper);
 * the optimizer as `fine-tune`'s (heads at lr, backbone at lr × 0.03). Not
 * implemented: the paper's warm-up phase (new head alone first).
 *
 * Needs the source head: see `LwfContext`.
 */
export const lwf: TransferMethod<LwfConfig, LwfState> = {
  id: ID,
  title: 'Learning without Forgetting (LwF)',
  description:
    'Fine-tuning with a new head plus distillation of the source head’s outputs (temperature T) on target inputs, so the source task is not forgotten.',
  reference: {
    authors: 'Li, Hoiem',
    title: 'Learning without Forgetting',
    year: 2016,
    arxiv: '1606.09282',
  },
  defaults: {
    epochs: 30,
    batchSize: 32,
    optimizer: 'adam',
    lr: 1e-2,
    momentum: 0.9,
    weightDecay: 0,
    schedule: 'constant',
    temperature: 2,
    lambdaOld: 1,
    backboneLrMultiplier: 0.03,
  },
  needs: { pretrainedBackbone: true, sourceBatches: false },
  validate(options) {
    const c = mergeConfig(ID, lwf.defaults, options);
    validateOptimConfig(ID, c);
    requirePositive(ID, 'temperature', c.temperature);
    requireNonNegative(ID, 'lambdaOld', c.lambdaOld);
    requireNonNegative(ID, 'backboneLrMultiplier', c.backboneLrMultiplier);
    return c;
  },
  init(ctx: LwfContext) {
    if (!ctx.pretrained) throw new Error(`method "${ID}": needs the source-pretrained backbone`);
    const backbone = ctx.backbone;
    const backboneNames = Object.keys(backbone.paramShapes);
    const missing = backboneNames.filter((n) => !ctx.pretrained?.[n]);
    if (missing.length > 0) {
      throw new Error(`method "${ID}": the pretrained weights lack ${missing.join(', ')}`);
    }
    const pretrainedBackbone = Object.fromEntries(
      backboneNames.map((n) => [n, ctx.pretrained?.[n] as tf.Tensor]),
    );
    const srcHead = sourceHeadOf(ctx, backbone.featureDim);
    const sourceClasses = srcHead[`${LWF_SOURCE_HEAD}.weight`]?.shape[1] as number;
    const head = linearHead(backbone.featureDim, ctx.numClasses, 'head');
    const oldHead = linearHead(backbone.featureDim, sourceClasses, LWF_SOURCE_HEAD);
    const params = mergeParams(
      cloneParams(pretrainedBackbone),
      head.init(ctx.rng.derive('head')),
      cloneParams(srcHead),
    );
    const heads = new Set([...head.paramNames, ...oldHead.paramNames]);
    const c = ctx.config;
    const statistics = new Set(backbone.nonTrainable ?? []);
    const trainable = Object.keys(params).filter(
      (n) => !statistics.has(n) && (heads.has(n) || c.backboneLrMultiplier > 0),
    );
    const optimizer = createOptimizer(c, (n) => (heads.has(n) ? 1 : c.backboneLrMultiplier));
    return {
      backbone,
      head,
      oldHead,
      config: c,
      optimizer,
      trainable,
      totalSteps: ctx.totalSteps,
      trainBatchNorm: trainsBatchNorm(backbone, c.backboneLrMultiplier),
      original: cloneParams(mergeParams(pretrainedBackbone, srcHead)),
      params,
      optState: optimizer.init(
        Object.fromEntries(trainable.map((n) => [n, params[n] as tf.Tensor])),
      ),
    };
  },
  trainStep(state, input) {
    const { x, y } = input.target;
    const c = state.config;
    const teacher = tf.tidy(() =>
      state.oldHead.apply(state.original, state.backbone.apply(state.original, x).features),
    );
    // The student's normalisation trains like fine-tuning's; the teacher (the
    // original network) answers in inference mode.
    try {
      const result = normalizedTrainStep(
        state,
        scheduleFactor(c, input.step, state.totalSteps),
        (p, norm) => {
          const feats = norm.apply(p, x).features;
          const ce = softmaxCrossEntropy(state.head.apply(p, feats), y);
          // Kept when λ_o = 0 (as a zero term) so the old head still has a gradient.
          const old = distillationLoss(state.oldHead.apply(p, feats), teacher, c.temperature);
          return tf.add(ce, tf.mul(old, c.lambdaOld)) as tf.Scalar;
        },
      );
      return {
        state: { ...state, params: result.params, optState: result.state },
        loss: result.loss,
      };
    } finally {
      teacher.dispose();
    }
  },
  predictParams: (state) => state.params,
  predict: (state, params, x) => state.head.apply(params, state.backbone.apply(params, x).features),
  dispose(state) {
    disposeParams(state.params);
    disposeOptimizerState(state.optState);
    disposeParams(state.original);
  },
};
