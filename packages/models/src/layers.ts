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
  | ({
      /**
       * Batch normalisation over the last (channel) axis (Ioffe & Szegedy
       * 2015): y = γ·(x − μ)/√(σ² + ε) + β. Inference uses the running
       * statistics; training mode (`apply(…, { training: true })`) the batch's
       * mean and biased variance, and reports the running averages updated as
       * PyTorch does. Parameters `<name>.gamma`, `<name>.beta` (trained) and
       * `<name>.running_mean`, `<name>.running_var` (not trained).
       */
      kind: 'batchNorm';
      name: string;
    } & BatchNormOptions)
  | {
      /**
       * A ResNet basic block:
       * relu(conv3×3(relu(conv3×3(x, stride))) + shortcut(x)), 'same' padding;
       * the shortcut is x itself, or a 1×1 convolution with the block's stride
       * when the shape changes (ResNet's projection shortcut). Parameters
       * `<name>.conv1.*`, `<name>.conv2.*` and, when projecting, `<name>.proj.*`.
       * With `batchNorm`, each convolution is followed by batch normalisation
       * as in He et al. 2016 (`<name>.bn1.*`, `<name>.bn2.*`, `<name>.proj_bn.*`);
       * the convolutions keep their biases (redundant with β, harmless).
       */
      kind: 'residual';
      name: string;
      filters: number;
      stride?: number;
      batchNorm?: boolean;
    };

export interface BatchNormOptions {
  /** PyTorch's convention: running = (1 − momentum)·running + momentum·batch. Default 0.1. */
  momentum?: number;
  /** Added to the variance. Default 1e-5. */
  epsilon?: number;
}

/**
 * Where a forward pass runs normalisation layers. Training mode normalises
 * with batch statistics and writes each layer's updated running statistics
 * into `statistics` (keyed like the parameters); nothing changes in place.
 */
export interface NormContext {
  readonly training: boolean;
  /** Receives the updated running statistics; leave out when a pass does not need them (L2T-ww's look-ahead). */
  readonly statistics?: Record<string, tf.Tensor>;
}

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
    case 'batchNorm': {
      // Features [C] or maps [H, W, C]: the layouts ONNX's channel axis 1 maps onto.
      if (input.length !== 1 && input.length !== 3)
        throw new Error(
          `layer "${layer.name}": batchNorm needs features [C] or maps [H, W, C], got [${input}]`,
        );
      const m = layer.momentum ?? 0.1;
      if (!(m >= 0 && m <= 1))
        throw new Error(`layer "${layer.name}": batchNorm momentum must be in [0, 1], got ${m}`);
      const eps = layer.epsilon ?? 1e-5;
      if (!(eps > 0 && Number.isFinite(eps)))
        throw new Error(`layer "${layer.name}": batchNorm epsilon must be > 0, got ${eps}`);
      return [...input];
    }
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
        ...(layer.batchNorm
          ? {
              ...batchNormShapes(`${L}.bn1`, f),
              ...batchNormShapes(`${L}.bn2`, f),
              ...(residualProjects(layer, input) ? batchNormShapes(`${L}.proj_bn`, f) : {}),
            }
          : {}),
      };
    }
    case 'batchNorm': {
      if (input.length === 0)
        throw new Error(`layer "${layer.name}": batchNorm needs at least a channel axis`);
      return batchNormShapes(layer.name, input[input.length - 1] as number);
    }
    default:
      return {};
  }
}

const STATISTIC_SUFFIXES = ['.running_mean', '.running_var'] as const;

function batchNormShapes(prefix: string, channels: number): Record<string, number[]> {
  return {
    [`${prefix}.gamma`]: [channels],
    [`${prefix}.beta`]: [channels],
    [`${prefix}.running_mean`]: [channels],
    [`${prefix}.running_var`]: [channels],
  };
}

/** Normalisation running statistics: parameters that gradients must not train. */
export function isStatisticParam(paramName: string): boolean {
  return STATISTIC_SUFFIXES.some((suffix) => paramName.endsWith(suffix));
}

/**
 * How a fresh parameter starts: weights random (see `weightInitGain`),
 * biases, β and running means at zero, γ and running variances at one.
 */
export function initialValue(paramName: string): 'random' | 'zeros' | 'ones' {
  if (paramName.endsWith('.gamma') || paramName.endsWith('.running_var')) return 'ones';
  if (
    paramName.endsWith('.bias') ||
    paramName.endsWith('.beta') ||
    paramName.endsWith('.running_mean')
  )
    return 'zeros';
  return 'random';
}

/**
 * Initialisation gain of a weight (variance = gain / fan-in): 2 (He) where a
 * ReLU follows, 1 (LeCun) otherwise. In a residual block conv1 feeds a ReLU;
 * conv2 and the projection feed the sum, and gain 1 keeps the sum's variance
 * from doubling block after block (without normalisation nothing resets it;
 * with it the gain is immaterial). "Followed by ReLU" looks past batchNorm.
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
  return (
    layer.kind === 'dense' ||
    layer.kind === 'conv2d' ||
    layer.kind === 'residual' ||
    layer.kind === 'batchNorm'
  );
}

/**
 * Batch normalisation of x over all axes but the last. In training mode the
 * batch statistics normalise (gradients flow through them) and the updated
 * running statistics go to `norm.statistics`: mean·m + (1 − m)·running, and
 * the unbiased batch variance likewise (PyTorch's convention). They are not
 * part of any loss, so no gradient reaches them.
 */
function batchNormalize(
  x: tf.Tensor,
  params: Readonly<Record<string, tf.Tensor>>,
  prefix: string,
  opts: BatchNormOptions,
  norm: NormContext | undefined,
): tf.Tensor {
  const epsilon = opts.epsilon ?? 1e-5;
  const gamma = param(params, `${prefix}.gamma`);
  const beta = param(params, `${prefix}.beta`);
  const runningMean = param(params, `${prefix}.running_mean`);
  const runningVar = param(params, `${prefix}.running_var`);
  if (!norm?.training) {
    return tf.add(
      tf.mul(tf.mul(tf.sub(x, runningMean), tf.rsqrt(tf.add(runningVar, epsilon))), gamma),
      beta,
    );
  }
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const count = x.size / (x.shape[x.shape.length - 1] as number);
  if (count < 2)
    throw new Error(
      `batch normalisation "${prefix}" in training mode needs more than one value per channel, got a batch of shape [${x.shape}]`,
    );
  const { mean, variance } = tf.moments(x, axes);
  if (norm.statistics) {
    const m = opts.momentum ?? 0.1;
    norm.statistics[`${prefix}.running_mean`] = tf.add(tf.mul(runningMean, 1 - m), tf.mul(mean, m));
    norm.statistics[`${prefix}.running_var`] = tf.add(
      tf.mul(runningVar, 1 - m),
      tf.mul(variance, (m * count) / (count - 1)),
    );
  }
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon))), gamma), beta);
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
  norm?: NormContext,
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
    case 'batchNorm':
      return batchNormalize(x, params, layer.name, layer, norm);
    case 'residual': {
      const L = layer.name;
      const s = layer.stride ?? 1;
      const bn = (v: tf.Tensor, prefix: string) =>
        layer.batchNorm ? batchNormalize(v, params, prefix, {}, norm) : v;
      const branch = bn(
        conv(tf.relu(bn(conv(x, `${L}.conv1`, s, 'same'), `${L}.bn1`)), `${L}.conv2`, 1, 'same'),
        `${L}.bn2`,
      );
      const shortcut = residualProjects(layer, x.shape.slice(1))
        ? bn(conv(x, `${L}.proj`, s, 'same'), `${L}.proj_bn`)
        : x;
      return tf.relu(tf.add(branch, shortcut));
    }
  }
}
