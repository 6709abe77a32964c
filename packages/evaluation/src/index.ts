export { type HScoreOptions, hScore } from './estimators/hscore.js';
export { kendallTau } from './estimators/kendall.js';
export { type LeepOptions, leep } from './estimators/leep.js';
export {
  type LogMEColumn,
  type LogMEOptions,
  type LogMEResult,
  logME,
  logMEDetails,
  logMEEvidence,
  logMERegression,
} from './estimators/logme.js';
export type { DenseMatrix, MatrixLike } from './estimators/matrix.js';
export { type NceOptions, nce } from './estimators/nce.js';
export { accuracy, crossEntropy, type MeanCI, meanCI, tQuantile975 } from './metrics.js';
export { type EmdOptions, type EmdResult, emd } from './ot/emd.js';
export { type SinkhornOptions, type SinkhornResult, sinkhorn } from './ot/sinkhorn.js';
export {
  type ClasswiseWasserstein,
  classwiseWasserstein,
  euclideanCost,
  wasserstein1,
} from './ot/wasserstein.js';
