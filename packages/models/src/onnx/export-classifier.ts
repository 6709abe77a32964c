/**
 * A trained network as one deployable ONNX classifier, and the small pieces
 * of ONNX file handling a user's pretrained backbone needs: its graph input,
 * its metadata_props, and where its classifier head starts.
 *
 * `exportClassifierToOnnx` works for any backbone with a graph form
 * (`emitGraph`): built-in LayerSpec backbones (input in tfjs's NHWC layout)
 * and imported ONNX models (input in the file's own layout, e.g. NCHW for a
 * PyTorch export). The graph is the backbone in inference mode (normalisation
 * with the stored running statistics), Flatten, the linear head as a Gemm
 * ("logits") and, by default, a Softmax over classes ("probabilities").
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Params } from '@transferlab/core';
import {
  attr,
  decodeModel,
  encodeModel,
  type INodeProto,
  type OnnxDim,
  OnnxGraphBuilder,
  realInputs,
  valueInfoDims,
} from '@transferlab/graph';
import type { Backbone } from '../backbone.js';
import type { LinearHead } from '../head.js';

export interface ExportClassifierOptions {
  /** The trained linear head; its weights are `params[head.prefix + '.weight' | '.bias']`. */
  head: LinearHead;
  /** Name of the graph input. Default "input". */
  inputName?: string;
  /** Add the output "probabilities" (softmax of the logits over classes). Default true. */
  softmax?: boolean;
  /** metadata_props of the model (e.g. the preprocessing), string → string. */
  metadata?: Readonly<Record<string, string>>;
  /** Opset of the default domain. Default 17 (what imported graphs are re-emitted in). */
  opset?: number;
  graphName?: string;
  docString?: string;
}

/**
 * Backbone + linear head as one ONNX model: input `[N, …backbone.inputShape]`
 * → "logits" `[N, classes]` (+ "probabilities"). `params` holds the backbone's
 * parameters (running statistics included) and the head's.
 */
export function exportClassifierToOnnx(
  backbone: Backbone,
  params: Params,
  opts: ExportClassifierOptions,
): Uint8Array {
  const what = 'exportClassifierToOnnx';
  if (!backbone.emitGraph)
    throw new Error(`${what}: backbone "${backbone.name}" has no graph form (emitGraph)`);
  const { head } = opts;
  if (head.inDim !== backbone.featureDim)
    throw new Error(
      `${what}: the head reads ${head.inDim} features, backbone "${backbone.name}" gives ${backbone.featureDim}`,
    );
  const inputName = opts.inputName ?? 'input';
  const g = new OnnxGraphBuilder(opts.graphName ?? backbone.name);
  const batch: OnnxDim = 'N';
  g.input(inputName, [batch, ...backbone.inputShape]);
  const weight = (name: string, shape: readonly number[], perm?: readonly number[]) => {
    if (g.has(name)) return name;
    const t = params[name];
    if (!t) throw new Error(`${what}: missing parameter "${name}"`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new Error(`${what}: parameter "${name}" has shape [${t.shape}], expected [${shape}]`);
    // Built-in conv weights are stored as tfjs [kh, kw, cin, cout]; ONNX wants them permuted.
    const values = perm ? tf.tidy(() => tf.transpose(t, [...perm])) : t;
    g.initializer(name, new Float32Array(values.dataSync()), values.shape);
    if (values !== t) values.dispose();
    return name;
  };
  const net = backbone.emitGraph(g, { input: inputName, weight, training: false });
  for (const reserved of ['logits', 'probabilities', 'head:flat'])
    if (g.has(reserved))
      throw new Error(`${what}: the backbone graph already has a value named "${reserved}"`);
  const flat =
    backbone.featureShape.length === 1
      ? net.features
      : g.op('Flatten', [net.features], { axis: attr.int(1) }, 'head:flat');
  const w = weight(`${head.prefix}.weight`, [head.inDim, head.numClasses]);
  const b = weight(`${head.prefix}.bias`, [head.numClasses]);
  g.op('Gemm', [flat, w, b], {}, 'logits', `${head.prefix}/Gemm`);
  g.output('logits', [batch, head.numClasses]);
  if (opts.softmax ?? true) {
    g.op('Softmax', ['logits'], { axis: attr.int(1) }, 'probabilities', 'probabilities/Softmax');
    g.output('probabilities', [batch, head.numClasses]);
  }
  return g.toBytes({
    opset: opts.opset ?? 17,
    docString: opts.docString ?? `transferlab classifier: ${backbone.name} + linear head`,
    ...(opts.metadata ? { metadata: opts.metadata } : {}),
  });
}

/** The model's metadata_props as a plain object (later duplicates win). */
export function readOnnxMetadata(
  bytes: Uint8Array,
  source = '<onnx bytes>',
): Record<string, string> {
  const model = decodeModel(bytes, source);
  const out: Record<string, string> = {};
  for (const p of model.metadataProps ?? []) if (p.key) out[p.key] = p.value ?? '';
  return out;
}

/** The same model with `entries` set in its metadata_props (other keys kept). */
export function setOnnxMetadata(
  bytes: Uint8Array,
  entries: Readonly<Record<string, string>>,
  source = '<onnx bytes>',
): Uint8Array {
  const model = decodeModel(bytes, source);
  const kept = (model.metadataProps ?? []).filter((p) => !Object.hasOwn(entries, p.key ?? ''));
  return encodeModel({
    ...model,
    metadataProps: [...kept, ...Object.entries(entries).map(([key, value]) => ({ key, value }))],
  });
}

/** The single graph input (besides initializers): its name and dims (a string or undefined where symbolic). */
export function onnxGraphInput(
  bytes: Uint8Array,
  source = '<onnx bytes>',
): { name: string; dims: (number | string | undefined)[] | undefined } {
  const model = decodeModel(bytes, source);
  const inputs = realInputs(model.graph ?? {});
  if (inputs.length !== 1)
    throw new Error(
      `${source}: expected exactly one graph input besides initializers, found ${inputs.length}`,
    );
  const input = inputs[0] as (typeof inputs)[number];
  return { name: input.name ?? '', dims: valueInfoDims(input) };
}

export interface ClassifierHeadCut {
  /** The value the head reads: use it as the backbone's features. */
  features: string;
  /** The head's node (Gemm, or MatMul + Add) as `name (OpType)`. */
  head: string;
}

/**
 * Where a classifier's final linear layer starts: when the first graph output
 * is a Gemm, or a MatMul with a constant weight (+ Add of a constant bias),
 * possibly followed by Softmax / LogSoftmax / Identity, the value that layer
 * reads. This is how a PyTorch `torch.onnx.export` of an image classifier
 * ends (`… → Flatten → Gemm`). Undefined when the output is not such a layer,
 * or is named "features" (a backbone's output, as `exportBackboneToOnnx` names it).
 */
export function findClassifierHead(
  bytes: Uint8Array,
  source = '<onnx bytes>',
): ClassifierHeadCut | undefined {
  const graph = decodeModel(bytes, source).graph ?? {};
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const producer = new Map<string, INodeProto>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) if (o) producer.set(o, n);
  // A Constant node's output is as constant as an initializer.
  const constant = (v: string | undefined) =>
    v !== undefined && (initializers.has(v) || producer.get(v)?.opType === 'Constant');
  const label = (n: INodeProto) => `${n.name || '(unnamed)'} (${n.opType})`;
  const output = graph.output?.[0]?.name ?? '';
  // A backbone's own output (exportBackboneToOnnx names it so) is never cut.
  if (output === 'features') return undefined;
  let node = producer.get(output);
  while (node && ['Softmax', 'LogSoftmax', 'Identity'].includes(node.opType ?? ''))
    node = producer.get(node.input?.[0] ?? '');
  if (!node) return undefined;
  const [a, b] = node.input ?? [];
  if (node.opType === 'Gemm' && a && constant(b)) return { features: a, head: label(node) };
  if (node.opType === 'MatMul' && a && constant(b)) return { features: a, head: label(node) };
  if (node.opType === 'Add') {
    const other = constant(a) ? b : constant(b) ? a : undefined;
    const mm = other ? producer.get(other) : undefined;
    const [x, w] = mm?.input ?? [];
    if (mm?.opType === 'MatMul' && x && constant(w))
      return { features: x, head: `${label(mm)} + ${label(node)}` };
  }
  return undefined;
}
