export {
  type AttentionTransferConfig,
  type AttentionTransferState,
  attentionLoss,
  attentionMap,
  attentionTransfer,
} from './attention-transfer/index.js';
export {
  type FeatureMatchingConfig,
  type FeatureMatchingState,
  featureMatching,
} from './feature-matching/index.js';
export { type FineTuneConfig, fineTune } from './fine-tune/index.js';
export { type JointConfig, joint } from './joint/index.js';
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
  matMulFast,
  safeBackboneApply,
  safeConv2d,
  safeMaxPool,
  safeSoftmaxCrossEntropy,
  stopGradient,
} from './l2t-ww/safe-ops.js';
export {
  defaultTaps,
  type FeatureTransferOptions,
  matchingLoss,
  resolvePairs,
  type TapPair,
} from './l2t-ww/transfer.js';
export { type LinearProbeConfig, linearProbe } from './linear-probe/index.js';
export {
  distillationLoss,
  LWF_SOURCE_HEAD,
  type LwfConfig,
  type LwfContext,
  type LwfState,
  lwf,
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
export { builtinMethods, createMethodRegistry } from './registry.js';
export { type ScratchConfig, scratch } from './scratch/index.js';
export {
  type ClassifierState,
  classifierLogits,
  classifierStep,
  createOptimizer,
  disposeClassifier,
  initClassifier,
  type OptimConfig,
  scheduleFactor,
  supervisedMethod,
  validateOptimConfig,
} from './shared/classifier.js';
export { mergeConfig, requireNonNegative, requireOneOf, requirePositive } from './shared/config.js';
export { initMultiHead, type MultiHeadState, multiHeadStep } from './shared/multi-head.js';
export type {
  AnyTransferMethod,
  Batch,
  LoopConfig,
  MethodContext,
  MethodNeeds,
  PaperReference,
  StepInput,
  TransferMethod,
} from './types.js';
