import * as tf from '@tensorflow/tfjs-core';

/**
 * A backbone is data: an ordered list of layer descriptions with named
 * parameters. The same description is run eagerly in tfjs here, and can be
 * exported to other runtimes (ONNX) without re-implementing the model.
 */
/** `square` is the quadratic activation of MeRLin's theory setting (a two-layer net with σ(t) = t²). */
export type Activation = 'relu' | 'square' | 'linear';

export type LayerSpec =
  | { kind: 'flatten'; name: string }
  | { kind: 'dense'; name: string; units: number; activation?: Activation }
  | {
      kind: 'conv2d';
      name: string;
      filters: number;
      kernelSize: number;
      stride?: number;
      padding?: 'same' | 'valid';
      activation?: Activation;
    }
  | { kind: 'maxPool'; name: string; size: number; stride?: number }
  | { kind: 'globalAvgPool'; name: string }
  | { kind: 'relu'; name: string }
  | {
      /**
       * A ResNet basic block without normalisation:
       * relu(conv3×3(relu(conv3×3(x, stride))) + shortcut(x)), 'same' padding;
       * the shortcut is x itself, or a 1×1 convolution with the block's stride
       * when the shape changes (ResNet's projection shortcut). Parameters
       * `<name>.conv1.*`, `<name>.conv2.*` and, when projecting, `<name>.proj.*`.
       */
      kind: 'residual';
      name: string;
      filters: number;
      stride?: number;
    };

/** Whether a residual block needs the 1×1 projection shortcut for this input shape. */
export function residualProjects(
  layer: { filters: number; stride?: number },
  input: readonly number[],
): boolean {
  return (layer.stride ?? 1) !== 1 || input[2] !== layer.filters;
}

function convOutSize(size: number, k: number, s: number, padding: 'same' | 'valid'): number {
  return padding === 'same' ? Math.ceil(size / s) : Math.floor((size - k) / s) + 1;
}

/** Shape of one example (no batch dimension) after a layer. */
export function outputShape(layer: LayerSpec, input: readonly number[]): number[] {
  switch (layer.kind) {
    case 'flatten':
      return [input.reduce((a, b) => a * b, 1)];
    case 'dense':
      if (input.length !== 1)
        throw new Error(`layer "${layer.name}": dense needs a flat input, got shape [${input}]`);
      return [layer.units];
    case 'conv2d': {
      if (input.length !== 3)
        throw new Error(`layer "${layer.name}": conv2d needs [H, W, C] input, got [${input}]`);
      const [h, w] = input as [number, number, number];
      const s = layer.stride ?? 1;
      const k = layer.kernelSize;
      const padding = layer.padding ?? 'same';
      const oh = convOutSize(h, k, s, padding);
      const ow = convOutSize(w, k, s, padding);
      if (oh <= 0 || ow <= 0)
        throw new Error(`layer "${layer.name}": input [${input}] too small for a ${k}×${k} kernel`);
      return [oh, ow, layer.filters];
    }
    case 'maxPool': {
      if (input.length !== 3)
        throw new Error(`layer "${layer.name}": maxPool needs [H, W, C] input, got [${input}]`);
      const [h, w, c] = input as [number, number, number];
      const s = layer.stride ?? layer.size;
      return [Math.floor((h - layer.size) / s) + 1, Math.floor((w - layer.size) / s) + 1, c];
    }
    case 'globalAvgPool': {
      if (input.length !== 3)
        throw new Error(
          `layer "${layer.name}": globalAvgPool needs [H, W, C] input, got [${input}]`,
        );
      return [input[2] as number];
    }
    case 'relu':
      return [...input];
    case 'residual': {
      if (input.length !== 3)
        throw new Error(`layer "${layer.name}": residual needs [H, W, C] input, got [${input}]`);
      const s = layer.stride ?? 1;
      return [
        Math.ceil((input[0] as number) / s),
        Math.ceil((input[1] as number) / s),
        layer.filters,
      ];
    }
  }
}

/** Parameter shapes of a layer given its input shape, keyed by parameter name. */
export function layerParamShapes(
  layer: LayerSpec,
  input: readonly number[],
): Record<string, number[]> {
  switch (layer.kind) {
    case 'dense':
      return {
        [`${layer.name}.weight`]: [input[0] as number, layer.units],
        [`${layer.name}.bias`]: [layer.units],
      };
    case 'conv2d':
      return {
        [`${layer.name}.weight`]: [
          layer.kernelSize,
          layer.kernelSize,
          input[2] as number,
          layer.filters,
        ],
        [`${layer.name}.bias`]: [layer.filters],
      };
    case 'residual': {
      const cin = input[2] as number;
      const f = layer.filters;
      const L = layer.name;
      return {
        [`${L}.conv1.weight`]: [3, 3, cin, f],
        [`${L}.conv1.bias`]: [f],
        [`${L}.conv2.weight`]: [3, 3, f, f],
        [`${L}.conv2.bias`]: [f],
        ...(residualProjects(layer, input)
          ? { [`${L}.proj.weight`]: [1, 1, cin, f], [`${L}.proj.bias`]: [f] }
          : {}),
      };
    }
    default:
      return {};
  }
}

/**
 * Initialisation gain of a weight (variance = gain / fan-in): 2 (He) where a
 * ReLU follows, 1 (LeCun) otherwise. In a residual block conv1 feeds a ReLU;
 * conv2 and the projection feed the sum, and gain 1 keeps the sum's variance
 * from doubling block after block (there is no normalisation to reset it).
 */
export function weightInitGain(
  layer: LayerSpec,
  paramName: string,
  followedByRelu: boolean,
): number {
  if (layer.kind === 'residual') return paramName.endsWith('.conv1.weight') ? 2 : 1;
  return followedByRelu ? 2 : 1;
}

/**
 * The primitive ops a layer runs on. The default is plain tfjs; L2T-ww swaps
 * in second-order-safe versions with the same values and first-order
 * gradients, so both run the one layer definition below.
 */
export interface LayerOps {
  /** `dataInput`: x is data (no gradient needed for it). */
  conv2d(
    x: tf.Tensor4D,
    filter: tf.Tensor4D,
    stride: number,
    padding: 'same' | 'valid',
    dataInput: boolean,
  ): tf.Tensor4D;
  matMul(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D;
  maxPool(x: tf.Tensor4D, size: number, stride: number): tf.Tensor4D;
}

export const tfjsLayerOps: LayerOps = {
  conv2d: (x, filter, stride, padding) => tf.conv2d(x, filter, stride, padding),
  matMul: (a, b) => tf.matMul(a, b),
  maxPool: (x, size, stride) => tf.maxPool(x, size, stride, 'valid'),
};

function activate(x: tf.Tensor, activation: Activation | undefined): tf.Tensor {
  if (activation === 'relu') return tf.relu(x);
  if (activation === 'square') return tf.square(x);
  return x;
}

function param(params: Readonly<Record<string, tf.Tensor>>, name: string): tf.Tensor {
  const t = params[name];
  if (!t) throw new Error(`missing parameter "${name}" (have: ${Object.keys(params).join(', ')})`);
  return t;
}

/** Whether a layer has weights (the first such layer reads the data itself). */
export function hasParams(layer: LayerSpec): boolean {
  return layer.kind === 'dense' || layer.kind === 'conv2d' || layer.kind === 'residual';
}

/**
 * Apply one layer to a batch. `dataInput` says x is data, not a function of
 * parameters (true for the first parametrised layer): ops may skip x's gradient.
 */
export function applyLayer(
  layer: LayerSpec,
  params: Readonly<Record<string, tf.Tensor>>,
  x: tf.Tensor,
  ops: LayerOps = tfjsLayerOps,
  dataInput = false,
): tf.Tensor {
  const conv = (input: tf.Tensor, prefix: string, stride: number, padding: 'same' | 'valid') =>
    tf.add(
      ops.conv2d(
        input as tf.Tensor4D,
        param(params, `${prefix}.weight`) as tf.Tensor4D,
        stride,
        padding,
        dataInput && input === x,
      ),
      param(params, `${prefix}.bias`),
    );
  switch (layer.kind) {
    case 'flatten':
      return tf.reshape(x, [x.shape[0] as number, -1]);
    case 'dense':
      return activate(
        tf.add(
          ops.matMul(x as tf.Tensor2D, param(params, `${layer.name}.weight`) as tf.Tensor2D),
          param(params, `${layer.name}.bias`),
        ),
        layer.activation,
      );
    case 'conv2d':
      return activate(
        conv(x, layer.name, layer.stride ?? 1, layer.padding ?? 'same'),
        layer.activation,
      );
    case 'maxPool':
      return ops.maxPool(x as tf.Tensor4D, layer.size, layer.stride ?? layer.size);
    case 'globalAvgPool':
      return tf.mean(x, [1, 2]);
    case 'relu':
      return tf.relu(x);
    case 'residual': {
      const s = layer.stride ?? 1;
      const branch = conv(
        tf.relu(conv(x, `${layer.name}.conv1`, s, 'same')),
        `${layer.name}.conv2`,
        1,
        'same',
      );
      const shortcut = residualProjects(layer, x.shape.slice(1))
        ? conv(x, `${layer.name}.proj`, s, 'same')
        : x;
      return tf.relu(tf.add(branch, shortcut));
    }
  }
}
