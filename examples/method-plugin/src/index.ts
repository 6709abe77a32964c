/**
 * LP-FT as a transferlab method plugin: first a linear probe (a head fitted
 * on the frozen pretrained features), then fine-tuning of the whole network
 * starting from that head instead of a random one.
 *
 * Kumar, Raghunathan, Jones, Ma & Liang, "Fine-Tuning can Distort Pretrained
 * Features and Underperform Out-of-Distribution", ICLR 2022: with a random
 * head, the first fine-tuning steps send large, mostly arbitrary gradients
 * into the backbone and distort features that were already good; a head that
 * already fits the target keeps those early gradients small, and LP-FT beat
 * both linear probing and fine-tuning in and out of distribution.
 *
 * Written only against the packages' public APIs, as a contributor's own
 * package would be; `pnpm bench run` takes it with `--plugin` or a suite
 * file's `from:` (see this folder's README).
 */
import type * as tf from '@tensorflow/tfjs-core';
import { cloneParams, mergeParams, type Params } from '@transferlab/core';
import {
  type ClassifierState,
  classifierLogits,
  classifierLoss,
  classifierStep,
  createNetworkTrainer,
  disposeClassifier,
  type FineTuneConfig,
  fineTune,
  fitLinearHead,
  frozenFeatures,
  mergeConfig,
  requireNonNegative,
  TRANSFER_METHOD_SPECIFICATION_VERSION,
  type TransferMethod,
  validateOptimConfig,
} from '@transferlab/methods';
import { linearHead } from '@transferlab/models';

export interface LpFtConfig extends FineTuneConfig {
  /**
   * Full-batch Adam steps (lr 1e-2) of the linear probe on the frozen
   * features of the target training set; 0 skips the probe (plain fine-tuning).
   */
  probeSteps: number;
}

const ID = 'lp-ft';

const defaults: LpFtConfig = { ...fineTune.defaults, probeSteps: 100 };

export const lpFt: TransferMethod<LpFtConfig, ClassifierState> = {
  specificationVersion: TRANSFER_METHOD_SPECIFICATION_VERSION,
  id: ID,
  title: 'LP-FT (linear probe, then fine-tune)',
  description:
    'A linear head fitted on the frozen source-pretrained features, then the whole network fine-tuned from it (backbone lr × backboneLrMultiplier).',
  reference: {
    authors: 'Kumar, Raghunathan, Jones, Ma, Liang',
    title: 'Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution',
    year: 2022,
    arxiv: '2202.10054',
  },
  defaults,
  needs: { pretrainedBackbone: true, sourceBatches: false },
  // The fine-tuning phase is the shared trainer's, so it runs on both engines;
  // the probe is computed once on tfjs before it.
  engines: ['onnxruntime', 'tfjs'],
  validate(options) {
    const config = mergeConfig<LpFtConfig>(ID, defaults, options);
    validateOptimConfig(ID, config);
    requireNonNegative(ID, 'backboneLrMultiplier', config.backboneLrMultiplier);
    if (!Number.isInteger(config.probeSteps) || config.probeSteps < 0)
      throw new Error(
        `method "${ID}": probeSteps must be a non-negative integer, got ${config.probeSteps}`,
      );
    return config;
  },
  async init(ctx) {
    const { config } = ctx;
    if (!ctx.pretrained) throw new Error(`method "${ID}" needs a pretrained backbone`);
    const train = ctx.targetTrain;
    if (config.probeSteps > 0 && !train)
      throw new Error(`method "${ID}": the probe needs the target training set at init`);
    // Named as the shared classifier names its head, so its step and predict apply.
    const head = linearHead(ctx.backbone.featureDim, ctx.numClasses, 'head');
    // The runner owns the pretrained weights: train a copy.
    const backboneParams = cloneParams(ctx.pretrained);
    let headParams: Params;
    if (config.probeSteps > 0 && train) {
      // Inference-mode features: the probe sees the backbone exactly as pre-training left it.
      const features = frozenFeatures(ctx.backbone, backboneParams, train);
      try {
        const probe = fitLinearHead(
          features,
          train.y as tf.Tensor1D,
          ctx.numClasses,
          config.probeSteps,
          ctx.rng.derive('lp-ft:probe'),
        );
        headParams = { 'head.weight': probe.weight, 'head.bias': probe.bias };
      } finally {
        features.dispose();
      }
    } else {
      headParams = head.init(ctx.rng.derive('head'));
    }
    const trainer = await createNetworkTrainer({
      engine: ctx.engine ?? 'tfjs',
      backbone: ctx.backbone,
      params: mergeParams(backboneParams, headParams),
      isHead: (name) => head.paramNames.includes(name),
      config,
      totalSteps: ctx.totalSteps,
      backboneLrMultiplier: config.backboneLrMultiplier,
      freezeBatchNorm: config.freezeBatchNorm,
      loss: classifierLoss(head),
      ...(ctx.threads ? { intraOpNumThreads: ctx.threads } : {}),
    });
    return { backbone: ctx.backbone, head, trainer };
  },
  trainStep: (state, input) => classifierStep(state, input.target, input.step),
  predictParams: (state) => state.trainer.params(),
  predict: classifierLogits,
  dispose: disposeClassifier,
};

export default lpFt;
