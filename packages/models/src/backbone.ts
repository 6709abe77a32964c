import * as tf from '@tensorflow/tfjs-core';
import type { Params, Rng } from '@transferlab/core';
import type { OnnxGraphBuilder } from '@transferlab/graph';
import {
  applyLayer,
  hasParams,
  initialValue,
  isStatisticParam,
  type LayerSpec,
  layerParamShapes,
  type NormContext,
  outputShape,
  weightInitGain,
} from './layers.js';
import { type EmitBackboneOptions, type EmittedBackbone, emitBackbone } from './onnx/emit.js';

export interface BackboneSpec {
  /** Architecture name, e.g. "mlp-256-128". */
  readonly name: string;
  /** Shape of one input example, e.g. [28, 28, 1]. */
  readonly inputShape: readonly number[];
  readonly layers: readonly LayerSpec[];
}

export interface BackboneOutput {
  /** Output of the last layer: the representation a head reads. */
  features: tf.Tensor;
  /** Requested intermediate activations, by layer name. */
  taps: Record<string, tf.Tensor>;
  /**
   * Training mode only, for backbones with normalisation statistics
   * (batchNorm layers, imported BatchNormalization): the running statistics
   * updated with this batch,
   * keyed like the parameters. Nothing is changed in place: a trainer writes
   * them into its parameters after the step.
   */
  statistics?: Record<string, tf.Tensor>;
}

export interface ApplyOptions {
  /** Layer (or node output) names whose activations to return. */
  taps?: readonly string[];
  /**
   * Training mode (PyTorch's `model.train()`): normalisation layers use the
   * batch's statistics and report updated running statistics. Default false:
   * inference with the stored statistics. Backbones without normalisation
   * layers ignore the flag.
   */
  training?: boolean;
}

/**
 * What methods and the runner need from a network: shapes, fresh weights and
 * a differentiable forward pass. Built-in backbones (`createBackbone`) also
 * carry their `spec` (a `SpecBackbone`); imported ONNX models satisfy this
 * interface as they are.
 */
export interface Backbone {
  /** Architecture name, e.g. "cnn-16-32-128" or an ONNX graph's name. */
  readonly name: string;
  /** The layer description, for backbones built from LayerSpecs (export, L2T-ww targets). */
  readonly spec?: BackboneSpec;
  readonly inputShape: readonly number[];
  /** Shape of one example's features. */
  readonly featureShape: readonly number[];
  /** Size of the flattened features. */
  readonly featureDim: number;
  /** Every layer's output can be tapped: name → shape of one example. */
  readonly tapShapes: Readonly<Record<string, readonly number[]>>;
  readonly paramShapes: Readonly<Record<string, readonly number[]>>;
  /**
   * Parameters that gradients must not train: normalisation running
   * statistics (batchNorm layers, imported BatchNormalization), updated
   * through `statistics` in training mode instead. Empty or absent when the
   * network has no normalisation.
   */
  readonly nonTrainable?: readonly string[];
  /** Fresh weights: He-normal for layers followed by ReLU, LeCun-normal otherwise (see `weightInitGain`), zero biases; normalisation γ = 1, β = 0, running mean 0 and variance 1. */
  init(rng: Rng): Params;
  apply(params: Params, x: tf.Tensor, opts?: ApplyOptions): BackboneOutput;
  /**
   * The forward pass as ONNX nodes appended to a graph being built: what the
   * onnxruntime training engine compiles and differentiates. Absent: the
   * backbone runs on tfjs only.
   */
  emitGraph?(g: OnnxGraphBuilder, opts: EmitBackboneOptions): EmittedBackbone;
}

/** A backbone built from LayerSpecs: exportable to ONNX, usable as an L2T-ww target. */
export interface SpecBackbone extends Backbone {
  readonly spec: BackboneSpec;
}

/** The backbone's LayerSpec description, or a clear error naming what needs one. */
export function requireSpec(backbone: Backbone, purpose: string): BackboneSpec {
  if (!backbone.spec) {
    throw new Error(
      `${purpose} needs a backbone built from LayerSpecs; "${backbone.name}" has no layer description (an imported ONNX model?)`,
    );
  }
  return backbone.spec;
}

function fanIn(shape: readonly number[]): number {
  // dense [in, out]; conv [kh, kw, cin, cout]
  return shape.slice(0, -1).reduce((a, b) => a * b, 1);
}

export function createBackbone(spec: BackboneSpec): SpecBackbone {
  const names = new Set<string>();
  const tapShapes: Record<string, number[]> = {};
  const paramShapes: Record<string, number[]> = {};
  const reluAfter = new Set<string>();
  let shape: number[] = [...spec.inputShape];
  spec.layers.forEach((layer, i) => {
    if (names.has(layer.name))
      throw new Error(`backbone "${spec.name}": duplicate layer name "${layer.name}"`);
    names.add(layer.name);
    Object.assign(paramShapes, layerParamShapes(layer, shape));
    shape = outputShape(layer, shape);
    tapShapes[layer.name] = shape;
    // A ReLU right after the layer, or after its batch normalisation (He init).
    let j = i + 1;
    while (spec.layers[j]?.kind === 'batchNorm') j++;
    if (('activation' in layer && layer.activation === 'relu') || spec.layers[j]?.kind === 'relu')
      reluAfter.add(layer.name);
  });
  if (spec.layers.length === 0) throw new Error(`backbone "${spec.name}": no layers`);
  const featureShape = shape;
  const inputSize = spec.inputShape.reduce((a, b) => a * b, 1);
  const nonTrainable = Object.keys(paramShapes).filter(isStatisticParam);

  const backbone: SpecBackbone = {
    name: spec.name,
    spec,
    inputShape: spec.inputShape,
    featureShape,
    featureDim: featureShape.reduce((a, b) => a * b, 1),
    tapShapes,
    paramShapes,
    nonTrainable,
    init(rng) {
      const params: Record<string, tf.Tensor> = {};
      for (const layer of spec.layers) {
        for (const [name, s] of Object.entries(layerParamShapes(layer, inputShapeOf(layer.name)))) {
          const size = s.reduce((a, b) => a * b, 1);
          const kind = initialValue(name);
          if (kind === 'zeros') {
            params[name] = tf.zeros(s);
          } else if (kind === 'ones') {
            params[name] = tf.ones(s);
          } else {
            const gain = weightInitGain(layer, name, reluAfter.has(layer.name));
            params[name] = tf.tensor(
              rng.derive(name).normalArray(size, Math.sqrt(gain / fanIn(s))),
              s,
            );
          }
        }
      }
      return params;
    },
    apply(params, x, opts = {}) {
      const wanted = new Set(opts.taps ?? []);
      for (const t of wanted) {
        if (!(t in tapShapes)) {
          throw new Error(
            `backbone "${spec.name}" has no tap "${t}". Available taps: ${Object.keys(tapShapes).join(', ')}`,
          );
        }
      }
      if (x.size / (x.shape[0] ?? 1) !== inputSize) {
        throw new Error(
          `backbone "${spec.name}" expects inputs of shape [N, ${spec.inputShape}], got [${x.shape}]`,
        );
      }
      let h =
        x.shape.length === spec.inputShape.length + 1
          ? x
          : tf.reshape(x, [x.shape[0] as number, ...spec.inputShape]);
      const taps: Record<string, tf.Tensor> = {};
      const statistics: Record<string, tf.Tensor> = {};
      const norm: NormContext | undefined =
        opts.training && nonTrainable.length > 0 ? { training: true, statistics } : undefined;
      let dataInput = true;
      for (const layer of spec.layers) {
        h = applyLayer(layer, params, h, undefined, dataInput, norm);
        if (hasParams(layer)) dataInput = false;
        if (wanted.has(layer.name)) taps[layer.name] = h;
      }
      return norm ? { features: h, taps, statistics } : { features: h, taps };
    },
    emitGraph: (g, opts) => emitBackbone(g, spec, opts),
  };
  return backbone;

  function inputShapeOf(layerName: string): number[] {
    let s: number[] = [...spec.inputShape];
    for (const layer of spec.layers) {
      if (layer.name === layerName) return s;
      s = outputShape(layer, s);
    }
    throw new Error(`unknown layer ${layerName}`);
  }
}

/** A multi-layer perceptron: flatten, then dense + ReLU layers. Taps: every layer. */
export function mlpSpec(
  inputShape: readonly number[],
  hidden: readonly number[] = [256, 128],
): BackboneSpec {
  if (hidden.length === 0) throw new Error('mlpSpec: at least one hidden layer');
  return {
    name: `mlp-${hidden.join('-')}`,
    inputShape,
    layers: [
      { kind: 'flatten', name: 'flatten' },
      ...hidden.map(
        (units, i): LayerSpec => ({ kind: 'dense', name: `fc${i + 1}`, units, activation: 'relu' }),
      ),
    ],
  };
}

/**
 * A small VGG-style CNN: blocks of 3×3 conv + ReLU + 2×2 max-pool, then a
 * dense + ReLU layer. Taps: conv1, pool1, conv2, pool2, …, fc.
 */
export function cnnSpec(
  inputShape: readonly number[],
  channels: readonly number[] = [16, 32],
  denseUnits = 128,
): BackboneSpec {
  if (inputShape.length !== 3)
    throw new Error(`cnnSpec: input must be [H, W, C], got [${inputShape}]`);
  const layers: LayerSpec[] = [];
  channels.forEach((filters, i) => {
    layers.push({
      kind: 'conv2d',
      name: `conv${i + 1}`,
      filters,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
    });
    layers.push({ kind: 'maxPool', name: `pool${i + 1}`, size: 2 });
  });
  layers.push({ kind: 'flatten', name: 'flatten' });
  layers.push({ kind: 'dense', name: 'fc', units: denseUnits, activation: 'relu' });
  return { name: `cnn-${channels.join('-')}-${denseUnits}`, inputShape, layers };
}

/**
 * A ResNet-style CNN (He et al. 2016's CIFAR layout): a 3×3 conv stem + ReLU,
 * then one stage of residual basic blocks per entry of `stages` (the first
 * block of every stage but the first halves the resolution), then global
 * average pooling. `batchNorm` puts batch normalisation after every
 * convolution, as the paper's ResNets (stem: conv → stem_bn → relu, tapped
 * as `stem` after the ReLU); without it the network has no normalisation.
 * Taps: stem, block1_1, …, block<stage>_<i>, pool.
 */
export function resnetSpec(
  inputShape: readonly number[],
  stages: readonly number[] = [16, 32, 64],
  blocksPerStage = 1,
  opts: { batchNorm?: boolean } = {},
): BackboneSpec {
  if (inputShape.length !== 3)
    throw new Error(`resnetSpec: input must be [H, W, C], got [${inputShape}]`);
  if (stages.length === 0) throw new Error('resnetSpec: at least one stage');
  if (!(Number.isInteger(blocksPerStage) && blocksPerStage >= 1))
    throw new Error(`resnetSpec: blocksPerStage must be an integer ≥ 1, got ${blocksPerStage}`);
  const batchNorm = opts.batchNorm ?? false;
  const stem = (name: string, activation?: 'relu'): LayerSpec => ({
    kind: 'conv2d',
    name,
    filters: stages[0] as number,
    kernelSize: 3,
    padding: 'same',
    ...(activation ? { activation } : {}),
  });
  // Key order as before batch norm existed: the pretrain cache hashes the spec's JSON.
  const layers: LayerSpec[] = batchNorm
    ? [stem('stem_conv'), { kind: 'batchNorm', name: 'stem_bn' }, { kind: 'relu', name: 'stem' }]
    : [stem('stem', 'relu')];
  stages.forEach((filters, stage) => {
    for (let b = 0; b < blocksPerStage; b++) {
      layers.push({
        kind: 'residual',
        name: `block${stage + 1}_${b + 1}`,
        filters,
        stride: stage > 0 && b === 0 ? 2 : 1,
        ...(batchNorm ? { batchNorm: true } : {}),
      });
    }
  });
  layers.push({ kind: 'globalAvgPool', name: 'pool' });
  return {
    name: `resnet${batchNorm ? '-bn' : ''}-${stages.join('-')}${blocksPerStage > 1 ? `x${blocksPerStage}` : ''}`,
    inputShape,
    layers,
  };
}
