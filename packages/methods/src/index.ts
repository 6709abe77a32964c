export { type FineTuneConfig, fineTune } from './fine-tune/index.js';
export { type LinearProbeConfig, linearProbe } from './linear-probe/index.js';
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
  validateOptimConfig,
} from './shared/classifier.js';
export { mergeConfig, requireNonNegative, requireOneOf, requirePositive } from './shared/config.js';
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
