export {
  estimateFixedFeatureCovariances,
  type FixedFeatureCovariances,
  type FixedFeaturePrediction,
  type FixedFeaturePredictor,
  fitReadout,
  gaussianSurrogateErrors,
  gcmPredictor,
  readoutError,
} from './analytic.js';
export {
  CHMM_METHODS,
  type ChmmExperimentOptions,
  type ChmmLevel,
  type ChmmMethod,
  chmmLevelLabel,
  defaultScratchTraining,
  defaultSourceTraining,
  runChmmExperiment,
} from './experiment.js';
export {
  type ChmmLoss,
  NET_ACTIVATIONS,
  type NetActivation,
  type TwoLayerTraining,
} from './network.js';
export {
  type ChmmSuite,
  chmmSuites,
  formatChmmTable,
  runChmmSuite,
  theoryChmmQuickSuite,
  theoryChmmSuite,
  theoryChmmSurrogate2xSuite,
  theoryChmmSurrogateSuite,
} from './suite.js';
