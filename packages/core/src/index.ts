export {
  activeBackend,
  BACKENDS,
  type BackendInfo,
  type BackendName,
  initBackend,
  parseBackendName,
} from './backend.js';
export { registerWasmGradientKernels } from './kernels/wasm-gradient-kernels.js';
export { measureTensorGrowth } from './leak.js';
export {
  choleskyFactor,
  choleskySolve,
  choleskySolveFactored,
  NotPositiveDefiniteError,
  SYMMETRY_TOLERANCE,
} from './linalg/index.js';
export { meanSquaredError, softmaxCrossEntropy } from './losses.js';
export {
  type AdamConfig,
  adam,
  disposeOptimizerState,
  type Optimizer,
  type OptimizerState,
  type SgdConfig,
  sgd,
} from './optimizers.js';
export {
  cloneParams,
  countParams,
  disposeParams,
  disposeReplaced,
  keepParams,
  mergeParams,
  type Params,
  paramNames,
  paramsToArrays,
  pickParams,
} from './params.js';
export { createRegistry, type Registry, UnknownIdError } from './registry.js';
export { createRng, type Rng } from './rng.js';
export {
  cosineSchedule,
  DivergenceError,
  type TrainStepResult,
  trainStep,
  valueAndGrads,
} from './train.js';
