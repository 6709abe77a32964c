export { accuracy, crossEntropy, type MeanCI, meanCI, tQuantile975 } from './metrics.js';
