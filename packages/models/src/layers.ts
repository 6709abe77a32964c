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
  | { kind: 'relu'; name: string };

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
      const same = (layer.padding ?? 'same') === 'same';
      const oh = same ? Math.ceil(h / s) : Math.floor((h - k) / s) + 1;
      const ow = same ? Math.ceil(w / s) : Math.floor((w - k) / s) + 1;
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
    default:
      return {};
  }
}

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

/** Apply one layer to a batch. */
export function applyLayer(
  layer: LayerSpec,
  params: Readonly<Record<string, tf.Tensor>>,
  x: tf.Tensor,
): tf.Tensor {
  switch (layer.kind) {
    case 'flatten':
      return tf.reshape(x, [x.shape[0] as number, -1]);
    case 'dense':
      return activate(
        tf.add(
          tf.matMul(x as tf.Tensor2D, param(params, `${layer.name}.weight`) as tf.Tensor2D),
          param(params, `${layer.name}.bias`),
        ),
        layer.activation,
      );
    case 'conv2d':
      return activate(
        tf.add(
          tf.conv2d(
            x as tf.Tensor4D,
            param(params, `${layer.name}.weight`) as tf.Tensor4D,
            layer.stride ?? 1,
            layer.padding ?? 'same',
          ),
          param(params, `${layer.name}.bias`),
        ),
        layer.activation,
      );
    case 'maxPool':
      return tf.maxPool(x as tf.Tensor4D, layer.size, layer.stride ?? layer.size, 'valid');
    case 'globalAvgPool':
      return tf.mean(x, [1, 2]);
    case 'relu':
      return tf.relu(x);
  }
}
