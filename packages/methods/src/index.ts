export { type FineTuneConfig, fineTune } from './fine-tune/index.js';
export { type JointConfig, joint } from './joint/index.js';
export { type LinearProbeConfig, linearProbe } from './linear-probe/index.js';
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
