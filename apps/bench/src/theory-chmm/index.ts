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
  type ChmmSeedIo,
  chmmLevelLabel,
  chmmTask,
  defaultScratchTraining,
  defaultSourceTraining,
  type ResolvedChmmExperiment,
  resolveChmmExperiment,
  runChmmExperiment,
  runChmmSeed,
} from './experiment.js';
export {
  type ChmmLoss,
  NET_ACTIVATIONS,
  type NetActivation,
  type TwoLayerTraining,
} from './network.js';
export {
  type ChmmSuite,
  chmmSuiteSchema,
  createChmmKind,
  formatChmmTable,
  runChmmSuite,
  theoryChmmKind,
} from './suite.js';
