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
export { NotPositiveSemidefiniteError } from './linalg/dense.js';
export { accuracy, crossEntropy, type MeanCI, meanCI, tQuantile975 } from './metrics.js';
export { type EmdOptions, type EmdResult, emd } from './ot/emd.js';
export { type SinkhornOptions, type SinkhornResult, sinkhorn } from './ot/sinkhorn.js';
export {
  type ClasswiseWasserstein,
  classwiseWasserstein,
  euclideanCost,
  wasserstein1,
} from './ot/wasserstein.js';
export {
  GcmConvergenceError,
  type GcmCovariances,
  type GcmOptions,
  type GcmProblem,
  type GcmResult,
  type GcmSpectrum,
  type GcmTask,
  gcmLearningCurve,
  gcmSpectrum,
  gcmSpectrumFromEigen,
  solveGcm,
  solveGcmFromCovariances,
} from './theory/gcm.js';
export {
  type DownstreamProblem,
  groundTruthRepresentation,
  type LinearTransferInput,
  type LinearTransferRisk,
  linearTransferRisk,
  minNormDivergences,
  type OptimalRepresentationOptions,
  type OptimalSpectralRepresentation,
  optimalSpectralRepresentation,
  projectedGradientRepresentation,
  type SelectionHardness,
  type SelectionTransitionRow,
  type SpectralTaskProfile,
  selectionHardness,
  selectionTransition,
  spectralProfileFromSpectra,
  spectralRepresentationMatrix,
  spectralRisk,
  spectralTaskProfile,
  supportRepresentation,
} from './theory/linear-transfer.js';
export {
  type LogisticCgOptions,
  type LogisticFit,
  logisticRidgeFit,
  logisticRidgeFitCg,
  ridgeSolve,
} from './theory/monte-carlo.js';
export {
  logisticProximal,
  type MonotoneRootOptions,
  monotoneRoot,
  ProximalError,
} from './theory/proximal.js';
export {
  type Activation,
  activationFunction,
  type FeatureMap,
  GAUSSIAN_EQUIVALENCE,
  type GaussianEquivalence,
  gaussianEquivalenceCoefficients,
  type RandomFeaturesCovariances,
  randomFeaturesCovariances,
  type TwoFeatureMapCovariances,
  twoFeatureMapCovariances,
} from './theory/random-features.js';
export { erf, erfc, type GaussHermiteRule, gaussHermite, normalCdf } from './theory/special.js';
export {
  type TargetLossReached,
  type TtaBoundOptions,
  type TtaBoundResult,
  type TtaTransforms,
  targetLossReached,
  ttaBound,
} from './tta/bound.js';
export {
  fitStandardizer,
  type LabelledFeatures,
  type Standardizer,
  type TtaTask,
} from './tta/data.js';
export {
  ceInputGradient,
  type LinearHead,
  type LipschitzHeadOptions,
  lipschitzPenalty,
  type TrainedHead,
  trainLipschitzHead,
} from './tta/head.js';
export type { TransformLearningOptions, TtaHistoryEntry, TtaSetting } from './tta/learn.js';
export {
  type RotatedGaussianPair,
  type RotatedGaussianPairOptions,
  rotatedGaussianPair,
} from './tta/synthetic.js';
export { conditionalEntropy, type TransformedWassersteinOptions } from './tta/terms.js';
