export { attr, type OnnxAttr } from './attr.js';
export { addGradients, type GradientOptions, pruneDeadNodes } from './autodiff.js';
export { type BatchNormTrainingOutputs, batchNormTraining } from './batch-norm.js';
export {
  type GraphNode,
  irVersionForOpset,
  type OnnxDim,
  OnnxGraphBuilder,
  type Shape,
  type ValueInfo,
} from './builder.js';
export { int64Labels, LABEL_TYPE, softmaxCrossEntropy } from './losses.js';
export { DIFFERENTIABLE_OPS, type GradContext, OP_RULES, type OpRule } from './ops/index.js';
export {
  adamCorrections,
  appendOptimizer,
  type GraphOptimizer,
  OPTIMIZER_INPUTS,
  sgdStepValues,
  type UpdatedParam,
  validateGraphOptimizer,
} from './optimizers.js';
export * from './proto.js';
export {
  createSession,
  type HostTensor,
  liveSessionCount,
  loadOnnxRuntime,
  type OrtModule,
  type OrtSession,
  type OrtSessionOptions,
  type OrtTensor,
  type OrtTensorType,
  runGraphOnce,
  runSession,
  type SessionOptions,
} from './runtime.js';
export {
  buildTrainingGraph,
  type StepOutput,
  type TrainingGraphSpec,
  TrainingSession,
} from './training.js';
