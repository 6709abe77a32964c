// The correlated hidden-manifold model (Gerace et al. 2022, arXiv 2106.05418).
export { CHMM_ACTIVATIONS, type ChmmActivation, chmmActivation } from './activations.js';
export {
  type ChmmCorrelation,
  type ChmmExpectedCorrelations,
  type ChmmMatrices,
  type ChmmMatrix,
  type ChmmOptions,
  type ChmmSample,
  type ChmmTask,
  type CorrelatedHiddenManifold,
  chmmExpectedCorrelations,
  chmmMeasuredCorrelations,
  chmmPerturbationForCorrelation,
  correlatedHiddenManifold,
} from './generator.js';
