import { createRegistry, type Registry } from '@transferlab/core';
import { cnnSpec, createBackbone, mlpSpec, resnetSpec, type SpecBackbone } from './backbone.js';

export interface BackboneFactory {
  readonly id: string;
  readonly description: string;
  create(inputShape: readonly number[]): SpecBackbone;
}

export const builtinBackbones: readonly BackboneFactory[] = [
  {
    id: 'mlp',
    description: 'MLP: flatten → 256 → 128 (ReLU); taps fc1, fc2',
    create: (inputShape) => createBackbone(mlpSpec(inputShape, [256, 128])),
  },
  {
    id: 'cnn',
    description:
      'CNN: 2 × (3×3 conv + ReLU + 2×2 max-pool) with 16, 32 channels → dense 128; taps conv1, pool1, conv2, pool2, fc',
    create: (inputShape) => createBackbone(cnnSpec(inputShape, [16, 32], 128)),
  },
  {
    id: 'cnn-small',
    description:
      'The cnn backbone at half width: 8, 16 channels → dense 64; taps conv1, pool1, conv2, pool2, fc (a target smaller than the source networks)',
    create: (inputShape) => createBackbone(cnnSpec(inputShape, [8, 16], 64)),
  },
  {
    id: 'resnet',
    description:
      'ResNet-style CNN without normalisation: 3×3 stem (16) + three residual basic blocks (16, 32/2, 64/2) + global average pool; taps stem, block1_1, block2_1, block3_1, pool',
    create: (inputShape) => createBackbone(resnetSpec(inputShape, [16, 32, 64], 1)),
  },
  {
    id: 'resnet-bn',
    description:
      'The resnet backbone with batch normalisation after every convolution (He et al. 2016): stem conv → BN → ReLU, blocks conv → BN → ReLU → conv → BN (+ projection → BN); taps stem, block1_1, block2_1, block3_1, pool',
    create: (inputShape) =>
      createBackbone(resnetSpec(inputShape, [16, 32, 64], 1, { batchNorm: true })),
  },
  {
    id: 'quadratic',
    description:
      "Two-layer net's first layer with quadratic activation (t²), 32 units: MeRLin's theory setting; tap q1",
    create: (inputShape) =>
      createBackbone({
        name: 'quadratic-32',
        inputShape,
        layers: [
          { kind: 'flatten', name: 'flatten' },
          { kind: 'dense', name: 'q1', units: 32, activation: 'square' },
        ],
      }),
  },
];

export function createBackboneRegistry(
  items: readonly BackboneFactory[] = builtinBackbones,
): Registry<BackboneFactory> {
  return createRegistry('backbone', items);
}
