export { attr, type OnnxAttr } from './attr.js';
export { addGradients, type GradientOptions } from './autodiff.js';
export {
  type GraphNode,
  irVersionForOpset,
  type OnnxDim,
  OnnxGraphBuilder,
  type Shape,
  type ValueInfo,
} from './builder.js';
export { DIFFERENTIABLE_OPS, type GradContext, OP_RULES, type OpRule } from './ops/index.js';
export * from './proto.js';
export {
  createSession,
  type HostTensor,
  loadOnnxRuntime,
  type OrtModule,
  runGraphOnce,
  runSession,
  type SessionOptions,
} from './runtime.js';
