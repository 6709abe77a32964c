import type * as tf from '@tensorflow/tfjs-core';
import { cloneParams, mergeParams, type Params } from '@transferlab/core';
import { type Backbone, type LinearHead, linearHead } from '@transferlab/models';
import { mergeConfig, requireNonNegative, requirePositive } from '../shared/config.js';
import type { LossFn } from '../shared/loss-ops.js';
import { type OptimConfig, validateOptimConfig } from '../shared/optim.js';
import { createNetworkTrainer, type NetworkTrainer } from '../shared/trainer.js';
import {
  type MethodContext,
  TRANSFER_METHOD_SPECIFICATION_VERSION,
  type TransferMethod,
} from '../types.js';
import { distillation, LWF_SOURCE_HEAD, sourceHeadOf } from './distillation.js';

export { distillation, distillationLoss, LWF_SOURCE_HEAD } from './distillation.js';

export interface LwfConfig extends OptimConfig {
  /** T: softmax temperature of the distillation term (2 in the paper). */
  temperature: number;
  /** λ_o: weight of the distillation term (1 in the paper). */
  lambdaOld: number;
  /** Learning rate of the shared backbone relative to the heads'. */
  backboneLrMultiplier: number;
}

/**
 * LwF's context: MethodContext, whose `sourceHead` LwF needs. LwF reads the
 * source head from `sourceHead`, or from `source_head.weight` /
 * `source_head.bias` inside `pretrained`.
 */
export interface LwfContext extends MethodContext<LwfConfig> {
  readonly sourceHead?: Params;
}

/**
 * The student — shared backbone + new head `head.*` + old head
 * `source_head.*`, all trained — in its trainer, which also holds the frozen
 * original network (backbone + source head): the "recorded" old-task responses.
 */
export interface LwfState {
  readonly backbone: Backbone;
  readonly head: LinearHead;
  readonly oldHead: LinearHead;
  readonly trainer: NetworkTrainer;
}

/**
 * CE(head(f(x)), y) + λ_o · KD_T(oldHead(f(x)) ‖ original network(x)), once
 * for both engines. The original network (the trainer's frozen copy) answers
 * in inference mode; the student's normalisation trains as fine-tuning's.
 * The term is kept when λ_o = 0 (weight 0) so the old head still has a gradient.
 */
export function lwfLoss(
  head: LinearHead,
  oldHead: LinearHead,
  c: Pick<LwfConfig, 'temperature' | 'lambdaOld'>,
): LossFn {
  return (ops) => {
    const { x, y } = ops.target;
    const teacher = ops.linear(ops.features(x, 'frozen'), oldHead, 'frozen');
    const feats = ops.features(x);
    const ce = ops.crossEntropy(ops.linear(feats, head), y);
    const old = distillation(ops, ops.linear(feats, oldHead), teacher, c.temperature);
    return ops.add(ce, ops.scale(old, c.lambdaOld));
  };
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
 * no dropout or augmentation here): the trainer's `frozen` network, read in
 * inference mode. One loss (`lwfLoss`) runs on both engines. Defaults:
 * T = 2, λ_o = 1 (the paper); the optimizer as `fine-tune`'s (heads at lr,
 * backbone at lr × 0.03). Not implemented: the paper's warm-up phase (new
 * head alone first).
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
  engines: ['onnxruntime', 'tfjs'],
  async init(ctx: LwfContext) {
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
    // The runner owns the pretrained weights and the source head: the trainer
    // takes over copies, one to train and one frozen.
    const trainer = await createNetworkTrainer({
      engine: ctx.engine ?? 'tfjs',
      backbone,
      params: mergeParams(
        cloneParams(pretrainedBackbone),
        head.init(ctx.rng.derive('head')),
        cloneParams(srcHead),
      ),
      isHead: (n) => heads.has(n),
      config: ctx.config,
      totalSteps: ctx.totalSteps,
      backboneLrMultiplier: ctx.config.backboneLrMultiplier,
      loss: lwfLoss(head, oldHead, ctx.config),
      frozen: cloneParams(mergeParams(pretrainedBackbone, srcHead)),
      ...(ctx.threads ? { intraOpNumThreads: ctx.threads } : {}),
    });
    return { backbone, head, oldHead, trainer };
  },
  async trainStep(state, input) {
    return { state, loss: await state.trainer.step(input) };
  },
  predictParams: (state) => state.trainer.params(),
  predict: (state, params, x) => state.head.apply(params, state.backbone.apply(params, x).features),
  dispose: (state) => state.trainer.dispose(),
};
