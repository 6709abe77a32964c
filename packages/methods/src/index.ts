export {
  type AttentionTransferConfig,
  type AttentionTransferState,
  attentionLoss,
  attentionMap,
  attentionTransfer,
} from './attention-transfer/index.js';
export { BSS_DIRECTIONS, type BssConfig, bss, bssPenalty, bssTerms } from './bss/index.js';
export {
  CO_TUNING_TARGETS,
  type CoTuningConfig,
  type CoTuningState,
  categoryRelationship,
  coTuning,
  coTuningLoss,
} from './co-tuning/index.js';
export {
  channelAttention,
  DELTA_WEIGHTS,
  type DeltaConfig,
  delta,
  deltaPenalty,
  featureWeights,
} from './delta/index.js';
export {
  type FeatureMatchingConfig,
  type FeatureMatchingState,
  featureMatching,
} from './feature-matching/index.js';
export { type FineTuneConfig, fineTune } from './fine-tune/index.js';
export { type JointConfig, type JointState, joint, jointLoss } from './joint/index.js';
export { type L2SpConfig, l2Sp, l2SpPenalty } from './l2-sp/index.js';
export {
  type L2tWwConfig,
  type L2tWwPairSummary,
  type L2tWwState,
  type L2tWwSummary,
  l2tWw,
  l2twwMetrics,
  l2twwSummary,
} from './l2t-ww/index.js';
export {
  type LookaheadProblem,
  lookaheadLoss,
  type MetaGradientMode,
  metaGradient,
} from './l2t-ww/lookahead.js';
export type { WhereActivation } from './l2t-ww/meta-nets.js';
export {
  safeBackboneApply,
  safeConv2d,
  safeMaxPool,
  safeSoftmaxCrossEntropy,
  stopGradient,
} from './l2t-ww/safe-ops.js';
export { type LinearProbeConfig, linearProbe } from './linear-probe/index.js';
export {
  distillationLoss,
  LWF_SOURCE_HEAD,
  type LwfConfig,
  type LwfContext,
  type LwfState,
  lwf,
  lwfLoss,
} from './lwf/index.js';
export {
  fitAndPredict,
  type HeadFitOptions,
  type MerlinHead,
  merlinOuterLoss,
  regressionTargets,
} from './merlin/head-fit.js';
export { type MerlinConfig, type MerlinState, merlin } from './merlin/index.js';
export { type BatchSplit, stratifiedSplit } from './merlin/split.js';
export {
  builtinMethods,
  checkSpecificationVersion,
  createMethodRegistry,
} from './registry.js';
export { type ScratchConfig, scratch } from './scratch/index.js';
export { batchFromTensors, createBatch, disposeBatch } from './shared/batch.js';
export {
  type ClassifierState,
  classifierLogits,
  classifierLoss,
  classifierStep,
  disposeClassifier,
  initClassifier,
  type Penalty,
  type PenaltyFn,
  supervisedMethod,
} from './shared/classifier.js';
export { mergeConfig, requireNonNegative, requireOneOf, requirePositive } from './shared/config.js';
export {
  defaultTaps,
  type FeatureTransferOptions,
  type FeatureTransferState,
  matchingLoss,
  resolvePairs,
  type TapPair,
} from './shared/feature-transfer.js';
export { fitLinearHead, frozenFeatures } from './shared/host-features.js';
export { graphLossOps, type LossFn, type LossOps, tfjsLossOps } from './shared/loss-ops.js';
export { matMulFast } from './shared/mat-mul.js';
export {
  createOptimizer,
  type OptimConfig,
  scheduleFactor,
  validateOptimConfig,
} from './shared/optim.js';
export { smallestSingularVectors, symmetricEigen } from './shared/spectral.js';
export {
  disposeTrainedModel,
  initTrainedModel,
  type TrainedModel,
  trainedModelLrFactor,
  trainedModelStep,
} from './shared/trained-model.js';
export {
  createNetworkTrainer,
  graphOptimizer,
  type NetworkTrainer,
  type NetworkTrainerSpec,
  requireEngine,
} from './shared/trainer.js';
export {
  type AnyTransferMethod,
  type Batch,
  ENGINES,
  type Engine,
  type LoopConfig,
  type MaybePromise,
  type MethodContext,
  type MethodNeeds,
  type PaperReference,
  type StepInput,
  type StepResult,
  TRANSFER_METHOD_SPECIFICATION_VERSION,
  type TransferMethod,
} from './types.js';
