import * as tf from '@tensorflow/tfjs-core';
import {
  cloneParams,
  disposeParams,
  mergeParams,
  type Params,
  softmaxCrossEntropy,
} from '@transferlab/core';
import { type LinearHead, linearHead } from '@transferlab/models';
import { mergeConfig, requireNonNegative, requirePositive } from '../shared/config.js';
import { type OptimConfig, validateOptimConfig } from '../shared/optim.js';
import {
  disposeTrainedModel,
  initTrainedModel,
  type TrainedModel,
  trainedModelStep,
} from '../shared/trained-model.js';
import {
  type MethodContext,
  TRANSFER_METHOD_SPECIFICATION_VERSION,
  type TransferMethod,
} from '../types.js';
import { distillationLoss, LWF_SOURCE_HEAD, sourceHeadOf } from './distillation.js';

export { distillationLoss, LWF_SOURCE_HEAD } from './distillation.js';

export interface LwfConfig extends OptimConfig {
  /** T: softmax temperature of the distillation term (2 in the paper). */
  temperature: number;
  /** λ_o: weight of the distillation term (1 in the paper). */
  lambdaOld: number;
  /** Learning rate of the shared backbone relative to the heads'. */
  backboneLrMultiplier: number;
}

/**
 * MethodContext plus the source head. The runner's context has no source
 * head yet: LwF reads it from `sourceHead` when the runner provides it, or
 * from `source_head.weight` / `source_head.bias` inside `pretrained`.
 */
export interface LwfContext extends MethodContext<LwfConfig> {
  readonly sourceHead?: Params;
}

/** The student: shared backbone + new head `head.*` + old head `source_head.*`, all trained. */
export interface LwfState extends TrainedModel<LwfConfig> {
  readonly head: LinearHead;
  readonly oldHead: LinearHead;
  /** Frozen copy of the original network (backbone + source head): the "recorded" old-task responses. */
  readonly original: Params;
}

const ID = 'lwf';

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
  specificationVersion: TRANSFER_METHOD_SPECIFICATION_VERSION,
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
    const heads = new Set([...head.paramNames, ...oldHead.paramNames]);
    const model = initTrainedModel({
      backbone,
      params: mergeParams(
        cloneParams(pretrainedBackbone),
        head.init(ctx.rng.derive('head')),
        cloneParams(srcHead),
      ),
      config: ctx.config,
      totalSteps: ctx.totalSteps,
      isHead: (n) => heads.has(n),
      backboneLrMultiplier: ctx.config.backboneLrMultiplier,
    });
    return {
      ...model,
      head,
      oldHead,
      original: cloneParams(mergeParams(pretrainedBackbone, srcHead)),
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
      return trainedModelStep(state, input.step, (p, norm) => {
        const feats = norm.apply(p, x).features;
        const ce = softmaxCrossEntropy(state.head.apply(p, feats), y);
        // Kept when λ_o = 0 (as a zero term) so the old head still has a gradient.
        const old = distillationLoss(state.oldHead.apply(p, feats), teacher, c.temperature);
        return tf.add(ce, tf.mul(old, c.lambdaOld)) as tf.Scalar;
      });
    } finally {
      teacher.dispose();
    }
  },
  predictParams: (state) => state.params,
  predict: (state, params, x) => state.head.apply(params, state.backbone.apply(params, x).features),
  dispose(state) {
    disposeTrainedModel(state);
    disposeParams(state.original);
  },
};
