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
import { type Backbone, requireSpec } from '../backbone.js';
import type { LinearHead } from '../head.js';
import { type BatchNormOptions, type LayerSpec, residualProjects } from '../layers.js';
import { attr, type OnnxDim, OnnxGraphBuilder } from '@transferlab/graph';

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

type Layout = 'tf' | 'nchw';
interface Val {
  /** ONNX value name. */
  name: string;
  layout: Layout;
  /** Shape of one example in tfjs layout. */
  shape: number[];
}

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

/** tfjs 'same' padding for one spatial dimension: [begin, end]. */
function samePads(size: number, kernel: number, stride: number): [number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + kernel - size, 0);
  const begin = Math.floor(total / 2);
  return [begin, total - begin];
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
  const tfForm = new Map<string, Val>();
  const nchwForm = new Map<string, Val>();

  // A value's key is its tfjs-layout name (layer name or input name).
  const asNchw = (v: Val, key: string): Val => {
    if (v.layout === 'nchw') return v;
    const cached = nchwForm.get(key);
    if (cached) return cached;
    if (v.shape.length !== 3)
      throw new Error(`exportBackboneToOnnx: "${key}" is not a spatial [H, W, C] value`);
    const name = g.op('Transpose', [v.name], { perm: attr.ints([0, 3, 1, 2]) }, `${key}:nchw`);
    const out: Val = { name, layout: 'nchw', shape: v.shape };
    nchwForm.set(key, out);
    return out;
  };
  const asTf = (v: Val, key: string): Val => {
    if (v.layout === 'tf') return v;
    const cached = tfForm.get(key);
    if (cached) return cached;
    const name = g.op('Transpose', [v.name], { perm: attr.ints([0, 2, 3, 1]) }, key);
    const out: Val = { name, layout: 'tf', shape: v.shape };
    tfForm.set(key, out);
    return out;
  };

  const initializersDone = new Set<string>();
  const addWeight = (name: string, t: tf.Tensor, transform?: (t: tf.Tensor) => tf.Tensor) => {
    if (initializersDone.has(name)) return name;
    initializersDone.add(name);
    const tt = transform ? tf.tidy(() => transform(t)) : t;
    g.initializer(name, new Float32Array(tt.dataSync()), tt.shape);
    if (tt !== t) tt.dispose();
    return name;
  };

  let cur: Val = { name: inputName, layout: 'tf', shape: [...spec.inputShape] };
  let curKey = inputName;
  const layerOut = new Map<string, { val: Val; key: string }>();
  let inShape: number[] = [...spec.inputShape];
  for (const layer of spec.layers) {
    const next = emitLayer(layer, cur, curKey, inShape);
    const expected = backbone.tapShapes[layer.name];
    if (expected && next.shape.join() !== expected.join()) {
      throw new Error(
        `exportBackboneToOnnx: internal shape mismatch at "${layer.name}": [${next.shape}] vs [${expected}]`,
      );
    }
    cur = next;
    curKey = layer.name;
    inShape = next.shape;
    layerOut.set(layer.name, { val: cur, key: curKey });
  }

  const featureVal = asTf(cur, curKey);
  const outDims = (shape: readonly number[]): OnnxDim[] => [batch, ...shape];
  for (const o of outputs) {
    if (o === 'features') {
      g.op('Identity', [featureVal.name], {}, 'features', 'features/Identity');
      g.output('features', outDims(featureVal.shape));
    } else if (o === 'logits' && head) {
      let flat = featureVal;
      if (featureVal.shape.length !== 1) {
        const name = g.op('Flatten', [featureVal.name], { axis: attr.int(1) }, 'head:flat');
        flat = { name, layout: 'tf', shape: [backbone.featureDim] };
      }
      const w = addWeight(
        `${head.prefix}.weight`,
        tensorValues(params, `${head.prefix}.weight`, [head.inDim, head.numClasses]),
      );
      const b = addWeight(
        `${head.prefix}.bias`,
        tensorValues(params, `${head.prefix}.bias`, [head.numClasses]),
      );
      g.op('Gemm', [flat.name, w, b], {}, 'logits', `${head.prefix}/Gemm`);
      g.output('logits', outDims([head.numClasses]));
    } else {
      const lo = layerOut.get(o);
      if (!lo) throw new Error(`exportBackboneToOnnx: no layer "${o}"`);
      const v = asTf(lo.val, lo.key);
      g.output(v.name, outDims(v.shape));
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

  function relu(v: Val, name: string): Val {
    const out = v.layout === 'tf' ? name : `${name}:nchw`;
    return { ...v, name: g.op('Relu', [v.name], {}, out, `${name}/Relu`) };
  }

  /** The layer's activation after its linear op (`pre` holds the raw output under a temporary name). */
  function activate(v: Val, activation: string | undefined, name: string): Val {
    if (activation === 'relu') return relu(v, name);
    if (activation === 'square') {
      const out = v.layout === 'tf' ? name : `${name}:nchw`;
      return { ...v, name: g.op('Mul', [v.name, v.name], {}, out, `${name}/Square`) };
    }
    return v;
  }

  /**
   * A BatchNormalization node (inference form, the running statistics as
   * initializers) reading `<prefix>.gamma/.beta/.running_mean/.running_var`.
   * ONNX's momentum is the weight of the old running value: 1 − PyTorch's.
   */
  function batchNorm(v: Val, prefix: string, o: BatchNormOptions, out: string): Val {
    const c = v.shape[v.shape.length - 1] as number;
    const input = (suffix: string) =>
      addWeight(`${prefix}.${suffix}`, tensorValues(params, `${prefix}.${suffix}`, [c]));
    const name = g.op(
      'BatchNormalization',
      [v.name, input('gamma'), input('beta'), input('running_mean'), input('running_var')],
      {
        epsilon: attr.float(o.epsilon ?? 1e-5),
        momentum: attr.float(1 - (o.momentum ?? 0.1)),
      },
      out,
      `${prefix.replaceAll('.', '/')}/BatchNormalization`,
    );
    return { ...v, name };
  }

  /** A Conv node (NCHW in and out) reading the weights `<prefix>.weight` / `.bias`. */
  function conv(
    v: Val,
    shape: number[],
    c: {
      prefix: string;
      filters: number;
      kernel: number;
      stride: number;
      padding: 'same' | 'valid';
      out: string;
    },
  ): Val {
    const [h, w, cin] = shape as [number, number, number];
    const { kernel: k, stride: s, padding } = c;
    const [pt, pb] = padding === 'same' ? samePads(h, k, s) : [0, 0];
    const [pl, pr] = padding === 'same' ? samePads(w, k, s) : [0, 0];
    const weight = addWeight(
      `${c.prefix}.weight`,
      tensorValues(params, `${c.prefix}.weight`, [k, k, cin, c.filters]),
      (t) => tf.transpose(t, [3, 2, 0, 1]),
    );
    const bias = addWeight(
      `${c.prefix}.bias`,
      tensorValues(params, `${c.prefix}.bias`, [c.filters]),
    );
    const out = g.op(
      'Conv',
      [v.name, weight, bias],
      {
        kernel_shape: attr.ints([k, k]),
        strides: attr.ints([s, s]),
        pads: attr.ints([pt, pl, pb, pr]),
        dilations: attr.ints([1, 1]),
        group: attr.int(1),
      },
      c.out,
      `${c.prefix.replaceAll('.', '/')}/Conv`,
    );
    const oh = padding === 'same' ? Math.ceil(h / s) : Math.floor((h - k) / s) + 1;
    const ow = padding === 'same' ? Math.ceil(w / s) : Math.floor((w - k) / s) + 1;
    return { name: out, layout: 'nchw', shape: [oh, ow, c.filters] };
  }

  function emitLayer(layer: LayerSpec, x: Val, xKey: string, shape: number[]): Val {
    const L = layer.name;
    switch (layer.kind) {
      case 'flatten': {
        const t = asTf(x, xKey);
        const size = shape.reduce((a, b) => a * b, 1);
        const name = g.op('Flatten', [t.name], { axis: attr.int(1) }, L, `${L}/Flatten`);
        return { name, layout: 'tf', shape: [size] };
      }
      case 'dense': {
        const t = asTf(x, xKey);
        const inDim = shape[0] as number;
        const w = addWeight(
          `${L}.weight`,
          tensorValues(params, `${L}.weight`, [inDim, layer.units]),
        );
        const b = addWeight(`${L}.bias`, tensorValues(params, `${L}.bias`, [layer.units]));
        const activated = layer.activation === 'relu' || layer.activation === 'square';
        const gemm = g.op('Gemm', [t.name, w, b], {}, activated ? `${L}:gemm` : L, `${L}/Gemm`);
        const v: Val = { name: gemm, layout: 'tf', shape: [layer.units] };
        return activate(v, layer.activation, L);
      }
      case 'conv2d': {
        const activated = layer.activation === 'relu' || layer.activation === 'square';
        const val = conv(asNchw(x, xKey), shape, {
          prefix: L,
          filters: layer.filters,
          kernel: layer.kernelSize,
          stride: layer.stride ?? 1,
          padding: layer.padding ?? 'same',
          out: activated ? `${L}:conv` : `${L}:nchw`,
        });
        return activate(val, layer.activation, L);
      }
      case 'residual': {
        const v = asNchw(x, xKey);
        const s = layer.stride ?? 1;
        const f = layer.filters;
        const c1 = conv(v, shape, {
          prefix: `${L}.conv1`,
          filters: f,
          kernel: 3,
          stride: s,
          padding: 'same',
          out: `${L}:conv1`,
        });
        const n1 = layer.batchNorm ? batchNorm(c1, `${L}.bn1`, {}, `${L}:bn1`) : c1;
        const r1 = g.op('Relu', [n1.name], {}, `${L}:relu1`, `${L}/conv1/Relu`);
        const c2raw = conv({ ...c1, name: r1 }, c1.shape, {
          prefix: `${L}.conv2`,
          filters: f,
          kernel: 3,
          stride: 1,
          padding: 'same',
          out: `${L}:conv2`,
        });
        const c2 = layer.batchNorm ? batchNorm(c2raw, `${L}.bn2`, {}, `${L}:bn2`) : c2raw;
        const projected = residualProjects(layer, shape)
          ? conv(v, shape, {
              prefix: `${L}.proj`,
              filters: f,
              kernel: 1,
              stride: s,
              padding: 'same',
              out: `${L}:proj`,
            })
          : undefined;
        const shortcut = !projected
          ? v
          : layer.batchNorm
            ? batchNorm(projected, `${L}.proj_bn`, {}, `${L}:proj_bn`)
            : projected;
        const sum = g.op('Add', [c2.name, shortcut.name], {}, `${L}:sum`, `${L}/Add`);
        return relu({ ...c2, name: sum }, L);
      }
      case 'batchNorm': {
        // Channel axis 1 in ONNX: NCHW for spatial values, [N, C] as it is.
        const v = shape.length === 3 ? asNchw(x, xKey) : asTf(x, xKey);
        return batchNorm(v, L, layer, v.layout === 'tf' ? L : `${L}:nchw`);
      }
      case 'maxPool': {
        const v = asNchw(x, xKey);
        const [h, w, c] = shape as [number, number, number];
        const s = layer.stride ?? layer.size;
        const name = g.op(
          'MaxPool',
          [v.name],
          {
            kernel_shape: attr.ints([layer.size, layer.size]),
            strides: attr.ints([s, s]),
            pads: attr.ints([0, 0, 0, 0]),
          },
          `${L}:nchw`,
          `${L}/MaxPool`,
        );
        return {
          name,
          layout: 'nchw',
          shape: [Math.floor((h - layer.size) / s) + 1, Math.floor((w - layer.size) / s) + 1, c],
        };
      }
      case 'globalAvgPool': {
        const v = asNchw(x, xKey);
        const c = shape[2] as number;
        const pooled = g.op('GlobalAveragePool', [v.name], {}, `${L}:pooled`, `${L}/GAP`);
        const name = g.op('Flatten', [pooled], { axis: attr.int(1) }, L, `${L}/Flatten`);
        return { name, layout: 'tf', shape: [c] };
      }
      case 'relu':
        return relu(x, L);
    }
  }
}
