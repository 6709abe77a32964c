/**
 * Tiny target networks for the meta-gradient tests (6×6×1 inputs). SMOOTH
 * has no kinks (linear convs, one strided; global average pooling), so
 * finite differences can take large steps; SMOOTH_BN adds batch
 * normalisation (training mode inside the look-ahead); KINKED has ReLUs and
 * max-pooling, whose kinks limit the finite-difference step.
 */
import type { BackboneSpec } from '@transferlab/models';

export const SMOOTH: BackboneSpec = {
  name: 'smooth-target',
  inputShape: [6, 6, 1],
  layers: [
    { kind: 'conv2d', name: 'c1', filters: 3, kernelSize: 3, activation: 'linear' },
    { kind: 'conv2d', name: 'c2', filters: 4, kernelSize: 3, stride: 2, activation: 'linear' },
    { kind: 'globalAvgPool', name: 'gap' },
  ],
};
/** SMOOTH with batch normalisation after the first conv: training mode (batch moments) inside the look-ahead. */
export const SMOOTH_BN: BackboneSpec = {
  name: 'smooth-bn-target',
  inputShape: [6, 6, 1],
  layers: [
    { kind: 'conv2d', name: 'c1', filters: 3, kernelSize: 3, activation: 'linear' },
    { kind: 'batchNorm', name: 'bn1' },
    { kind: 'conv2d', name: 'c2', filters: 4, kernelSize: 3, stride: 2, activation: 'linear' },
    { kind: 'globalAvgPool', name: 'gap' },
  ],
};
export const KINKED: BackboneSpec = {
  name: 'kinked-target',
  inputShape: [6, 6, 1],
  layers: [
    { kind: 'conv2d', name: 'c1', filters: 3, kernelSize: 3, activation: 'relu' },
    { kind: 'maxPool', name: 'p1', size: 2 },
    { kind: 'conv2d', name: 'c2', filters: 4, kernelSize: 3, activation: 'relu' },
    { kind: 'flatten', name: 'flat' },
  ],
};
