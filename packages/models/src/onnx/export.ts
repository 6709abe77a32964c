/**
 * Export a transferlab backbone (and optionally a linear head) to ONNX.
 *
 * Layout: the ONNX model takes the same input as the tfjs backbone — NHWC
 * `[N, H, W, C]` for image backbones (`[N, ...inputShape]` in general) — and
 * every output (features, taps, logits) has the same shape and element order
 * as its tfjs counterpart. Inside the graph, spatial values live in NCHW, the
 * layout ONNX Conv/MaxPool/GlobalAveragePool require: one Transpose
 * (perm [0,3,1,2]) feeds the first spatial layer, and a Transpose back
 * ([0,2,3,1]) is emitted only where a value must look like tfjs — a Flatten
 * (so flattened features keep tfjs's H·W·C order), a requested tap, or the
 * features. Value names: a layer's output in tfjs layout is named after the
 * layer (`conv1`), its NCHW form `conv1:nchw`.
 *
 * Weights become float32 initializers named like the Params: dense weights
 * keep their `[in, out]` layout (Gemm, transB = 0); conv weights are
 * transposed from tfjs `[kh, kw, cin, cout]` to ONNX `[cout, cin, kh, kw]`;
 * 'same' padding becomes explicit `pads` computed exactly as tfjs does
 * (the odd extra row/column goes at the bottom/right).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Params } from '@transferlab/core';
import { attr, type OnnxDim, OnnxGraphBuilder } from '@transferlab/graph';
import { type Backbone, requireSpec } from '../backbone.js';
import type { LinearHead } from '../head.js';
import { emitBackbone } from './emit.js';

export interface ExportOnnxOptions {
  /** A linear head appended after the features; adds the output "logits". */
  head?: LinearHead;
  /** ONNX opset of the default domain, 11–18. Default 13. */
  opset?: number;
  /** Name of the graph input. Default "input". */
  inputName?: string;
  /**
   * Graph outputs in order: "features", tap (layer) names, and "logits" when a
   * head is given. Default: ["features"], plus "logits" with a head. The first
   * output is what `importOnnx` uses as features by default.
   */
  outputs?: readonly string[];
  /** Graph name. Default: the backbone's spec name. */
  graphName?: string;
}

export const EXPORT_OPSET_RANGE = [11, 18] as const;

function tensorValues(params: Params, name: string, expected: readonly number[]): tf.Tensor {
  const t = params[name];
  if (!t) {
    throw new Error(
      `exportBackboneToOnnx: missing parameter "${name}" (have: ${Object.keys(params).join(', ')})`,
    );
  }
  if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
    throw new Error(
      `exportBackboneToOnnx: parameter "${name}" has shape [${t.shape}], expected [${expected}]`,
    );
  }
  return t;
}

/** Serialize `backbone` with `params` as an ONNX model (bytes of a .onnx file). */
export function exportBackboneToOnnx(
  backbone: Backbone,
  params: Params,
  opts: ExportOnnxOptions = {},
): Uint8Array {
  const spec = requireSpec(backbone, 'exportBackboneToOnnx');
  const opset = opts.opset ?? 13;
  if (!Number.isInteger(opset) || opset < EXPORT_OPSET_RANGE[0] || opset > EXPORT_OPSET_RANGE[1]) {
    throw new Error(
      `exportBackboneToOnnx: opset ${opset} is not supported (use ${EXPORT_OPSET_RANGE[0]}–${EXPORT_OPSET_RANGE[1]})`,
    );
  }
  const inputName = opts.inputName ?? 'input';
  const head = opts.head;
  const outputs = [...(opts.outputs ?? (head ? ['features', 'logits'] : ['features']))];
  const layerNames = new Set(spec.layers.map((l) => l.name));
  for (const reserved of [inputName, 'features', 'logits']) {
    if (layerNames.has(reserved)) {
      throw new Error(
        `exportBackboneToOnnx: layer name "${reserved}" clashes with a graph input/output name; ` +
          'rename the layer (or pass another inputName)',
      );
    }
  }
  if (new Set(outputs).size !== outputs.length)
    throw new Error(`exportBackboneToOnnx: duplicate outputs [${outputs.join(', ')}]`);
  for (const o of outputs) {
    if (o === 'features' || (o === 'logits' && head) || layerNames.has(o)) continue;
    throw new Error(
      `exportBackboneToOnnx: unknown output "${o}". Valid outputs: features, ` +
        `${head ? 'logits, ' : ''}${[...layerNames].join(', ')}`,
    );
  }
  if (head && head.inDim !== backbone.featureDim) {
    throw new Error(
      `exportBackboneToOnnx: head expects ${head.inDim} features, backbone gives ${backbone.featureDim}`,
    );
  }

  const g = new OnnxGraphBuilder(opts.graphName ?? spec.name);
  const batch: OnnxDim = 'N';
  g.input(inputName, [batch, ...spec.inputShape]);
  // Weights become float32 initializers named like the Params, in ONNX's layout.
  const weight = (name: string, shape: readonly number[], perm?: readonly number[]) => {
    if (g.has(name)) return name;
    const t = tensorValues(params, name, shape);
    const tt = perm ? tf.tidy(() => tf.transpose(t, [...perm])) : t;
    g.initializer(name, new Float32Array(tt.dataSync()), tt.shape);
    if (tt !== t) tt.dispose();
    return name;
  };
  const taps = outputs.filter((o) => layerNames.has(o));
  const net = emitBackbone(g, spec, { input: inputName, weight, taps });
  const outDims = (shape: readonly number[]): OnnxDim[] => [batch, ...shape];
  for (const o of outputs) {
    if (o === 'features') {
      g.op('Identity', [net.features], {}, 'features', 'features/Identity');
      g.output('features', outDims(net.featureShape));
    } else if (o === 'logits' && head) {
      let flat = net.features;
      if (net.featureShape.length !== 1)
        flat = g.op('Flatten', [net.features], { axis: attr.int(1) }, 'head:flat');
      const w = weight(`${head.prefix}.weight`, [head.inDim, head.numClasses]);
      const b = weight(`${head.prefix}.bias`, [head.numClasses]);
      g.op('Gemm', [flat, w, b], {}, 'logits', `${head.prefix}/Gemm`);
      g.output('logits', outDims([head.numClasses]));
    } else {
      g.output(net.taps[o] as string, outDims(backbone.tapShapes[o] as number[]));
    }
  }

  return g.toBytes({
    opset,
    docString: `transferlab backbone ${spec.name}; input and outputs in tfjs (NHWC) layout`,
    metadata: {
      'transferlab.backbone': JSON.stringify(spec),
      'transferlab.layout': 'input and outputs NHWC like tfjs; spatial values NCHW inside',
    },
  });
}
