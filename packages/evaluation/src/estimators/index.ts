// The transferability estimators alone: pure functions on arrays, no tfjs and
// no other package needed (`@transferlab/evaluation/estimators`).
export { type HScoreOptions, hScore } from './hscore.js';
export { kendallTau } from './kendall.js';
export { type LeepOptions, leep } from './leep.js';
export {
  type LogMEColumn,
  type LogMEOptions,
  type LogMEResult,
  logME,
  logMEDetails,
  logMEEvidence,
  logMERegression,
} from './logme.js';
export type { DenseMatrix, MatrixLike } from './matrix.js';
export { type NceOptions, nce } from './nce.js';
