/**
 * Import an ONNX model as a transferlab backbone: initializers become
 * trainable float32 Params, and `apply` runs the graph eagerly with tfjs ops,
 * so `tf.grads` flows through it and methods can fine-tune it.
 *
 * Inputs and outputs keep ONNX semantics: `apply` takes the tensor the ONNX
 * model takes (NCHW for a PyTorch model, NHWC for a model exported by
 * `exportBackboneToOnnx`) and returns features and taps in the layout the
 * ONNX graph defines. Inside, convolutions and pools run in NHWC (what tfjs
 * wants); see ops.ts for how values carry both layouts with few transposes.
 */
import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import { disposeParams, type Params, type Rng } from '@transferlab/core';
import {
  DT,
  dataTypeName,
  decodeModel,
  decodeTensor,
  defaultOpset,
  type IAttributeProto,
  type INodeProto,
  type ITensorProto,
  type OnnxGraphBuilder,
  onnx,
  realInputs,
  toNumber,
  valueInfoDims,
  valueInfoElemType,
} from '@transferlab/graph';
import type { ApplyOptions, BackboneOutput } from '../backbone.js';
import type { EmitBackboneOptions, EmittedBackbone } from './emit.js';
import { emitImportedGraph } from './emit-imported.js';
import {
  type AttrValue,
  type HostValue,
  hostValue,
  isHostInput,
  isStatisticInput,
  type NodeInfo,
  OPS,
  OpContext,
  onnxTensor,
  type RunMode,
  SUPPORTED_OPS,
  shapeOf,
  type Value,
} from './ops.js';

export interface ImportOnnxOptions {
  /** Name of the file (or other origin) used in every error message. */
  source?: string;
  /**
   * The value whose output is the backbone's features (the cut point): any
   * node output. Default: the graph's first output. Nodes not needed for the
   * features or taps are ignored (so unsupported ops after the cut are fine).
   */
  features?: string;
  /**
   * Values that `apply` may return as taps. Default: every node output the
   * features depend on.
   */
  taps?: readonly string[];
  /** Shape of one input example, when the file leaves dimensions symbolic. */
  inputShape?: readonly number[];
}

export interface OnnxBackbone {
  /** Graph name, or the source when the graph has none. */
  readonly name: string;
  readonly source: string;
  /** Opset version of the default domain. */
  readonly opset: number;
  readonly inputName: string;
  /** Name of the value used as features. */
  readonly featuresName: string;
  /** Shape of one input example, in the ONNX model's layout. */
  readonly inputShape: readonly number[];
  readonly featureShape: readonly number[];
  readonly featureDim: number;
  readonly tapShapes: Readonly<Record<string, readonly number[]>>;
  readonly paramShapes: Readonly<Record<string, readonly number[]>>;
  /**
   * Parameters no gradient may train: BatchNormalization running means and
   * variances. Inference reads them; training mode (apply with
   * `training: true`) normalises with batch statistics and returns their
   * updated moving averages in `statistics`.
   */
  readonly nonTrainable: readonly string[];
  /** Fresh tensors holding the imported (pretrained) weights; `rng` is not used. */
  init(rng?: Rng): Params;
  apply(params: Params, x: tf.Tensor, opts?: ApplyOptions): BackboneOutput;
  emitGraph(g: OnnxGraphBuilder, opts: EmitBackboneOptions): EmittedBackbone;
}

export interface ImportedOnnx {
  backbone: OnnxBackbone;
  /** The imported weights (float32), owned by the caller (`backbone.init()` makes more copies). */
  params: Params;
}

const AttrType = onnx.AttributeProto.AttributeType;

function decodeAttr(a: IAttributeProto, what: string): AttrValue {
  const has = (k: string) => Object.hasOwn(a, k);
  let type = a.type ?? 0;
  if (type === AttrType.UNDEFINED) {
    // Old files may omit the type: infer it from the field that is set.
    if (a.ints?.length) type = AttrType.INTS;
    else if (a.floats?.length) type = AttrType.FLOATS;
    else if (has('t')) type = AttrType.TENSOR;
    else if (has('s')) type = AttrType.STRING;
    else if (has('f')) type = AttrType.FLOAT;
    else if (has('i')) type = AttrType.INT;
  }
  switch (type) {
    case AttrType.INT:
      return { kind: 'int', v: toNumber(a.i) };
    case AttrType.FLOAT:
      return { kind: 'float', v: a.f ?? 0 };
    case AttrType.INTS:
      return { kind: 'ints', v: (a.ints ?? []).map(toNumber) };
    case AttrType.FLOATS:
      return { kind: 'floats', v: [...(a.floats ?? [])] };
    case AttrType.STRING:
      return { kind: 'string', v: new TextDecoder().decode(a.s ?? new Uint8Array()) };
    case AttrType.TENSOR:
      return { kind: 'tensor', v: decodeTensor(a.t ?? {}, `${what} attribute ${a.name}`) };
    default:
      return { kind: 'other', type: AttrType[type] ?? String(type) };
  }
}

function nodeInfo(n: INodeProto, index: number, source: string): NodeInfo {
  const opType = n.opType ?? '';
  const label = n.name || `#${index}`;
  const attrs = new Map<string, AttrValue>();
  for (const a of n.attribute ?? []) {
    attrs.set(a.name ?? '', decodeAttr(a, `${source}: node "${label}" (${opType})`));
  }
  return {
    index,
    label,
    opType: n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${opType}` : opType,
    inputs: [...(n.input ?? [])],
    outputs: [...(n.output ?? [])],
    attrs,
  };
}

/** Import an ONNX model (the bytes of a .onnx file) as a backbone plus its weights. */
export function importOnnx(bytes: Uint8Array, opts: ImportOnnxOptions = {}): ImportedOnnx {
  const source = opts.source ?? '<onnx bytes>';
  const model = decodeModel(bytes, source);
  const graph = model.graph ?? {};
  const opset = defaultOpset(model, source);
  function bad(msg: string): never {
    throw new Error(`${source}: ${msg}`);
  }

  // --- Initializers
  const initializers = new Map<string, ITensorProto>();
  for (const t of graph.initializer ?? []) {
    if (!t.name) bad('an initializer has no name');
    initializers.set(t.name as string, t);
  }

  // --- Input
  const inputs = realInputs(graph);
  if (inputs.length !== 1) {
    bad(
      `expected exactly one graph input besides initializers, found ${inputs.length}` +
        (inputs.length ? ` (${inputs.map((i) => i.name).join(', ')})` : ''),
    );
  }
  const input = inputs[0] as (typeof inputs)[number];
  const inputName = input.name ?? '';
  const elemType = valueInfoElemType(input);
  if (elemType !== undefined && elemType !== DT.FLOAT) {
    bad(`input "${inputName}" is ${dataTypeName(elemType)}; only FLOAT inputs are supported`);
  }
  const dims = valueInfoDims(input);
  let inputShape: number[];
  if (opts.inputShape) {
    inputShape = [...opts.inputShape];
  } else {
    const rest = dims?.slice(1) ?? [];
    if (!dims || dims.length < 2 || rest.some((d) => typeof d !== 'number')) {
      bad(
        `input "${inputName}" has shape [${(dims ?? []).map((d) => d ?? '?')}]: ` +
          'pass inputShape (one example, without the batch dimension)',
      );
    }
    inputShape = rest as number[];
  }
  const dryBatch = typeof dims?.[0] === 'number' ? dims[0] : 1;

  // --- Nodes
  const nodes = (graph.node ?? []).map((n, i) => nodeInfo(n, i, source));
  const producer = new Map<string, NodeInfo>();
  for (const n of nodes) {
    for (const o of n.outputs) {
      if (o === '') continue;
      if (producer.has(o) || initializers.has(o) || o === inputName) {
        bad(`value "${o}" is defined twice (second time by node "${n.label}")`);
      }
      producer.set(o, n);
    }
  }
  const graphOutputs = (graph.output ?? []).map((o) => o.name ?? '');
  const featuresName = opts.features ?? graphOutputs[0];
  if (!featuresName) bad('the graph has no outputs; pass features (a node output name)');
  const defined = (v: string) => producer.has(v) || initializers.has(v) || v === inputName;
  const requested = [featuresName as string, ...(opts.taps ?? [])];
  for (const v of requested) {
    if (!producer.has(v)) {
      bad(
        `no node produces "${v}"` +
          (defined(v) ? ' (it is an initializer or the input)' : '') +
          `. Node outputs include: ${[...producer.keys()].slice(0, 20).join(', ')}` +
          (producer.size > 20 ? ', …' : ''),
      );
    }
  }

  /** Nodes needed to compute `wanted`, in topological order (iterative DFS: deep graphs are fine). */
  const plan = (wanted: readonly string[]): NodeInfo[] => {
    const order: NodeInfo[] = [];
    const state = new Map<NodeInfo, 'visiting' | 'done'>();
    for (const w of wanted) {
      const root = producer.get(w);
      if (!root || state.get(root) === 'done') continue;
      state.set(root, 'visiting');
      const stack: { node: NodeInfo; next: number }[] = [{ node: root, next: 0 }];
      while (stack.length > 0) {
        const top = stack[stack.length - 1] as { node: NodeInfo; next: number };
        const n = top.node;
        if (top.next < n.inputs.length) {
          const i = n.inputs[top.next++] as string;
          if (i === '') continue;
          const p = producer.get(i);
          if (!p) {
            if (!initializers.has(i) && i !== inputName) {
              bad(
                `input "${i}" of node "${n.label}" (${n.opType}) is not produced by any node, ` +
                  'initializer or graph input (truncated or corrupt file?)',
              );
            }
            continue;
          }
          const s = state.get(p);
          if (s === 'visiting') bad(`the graph has a cycle through node "${p.label}"`);
          if (s === undefined) {
            state.set(p, 'visiting');
            stack.push({ node: p, next: 0 });
          }
          continue;
        }
        state.set(n, 'done');
        order.push(n);
        stack.pop();
      }
    }
    return order;
  };
  const needed = plan(requested);

  // --- Unsupported operators: one error listing all of them
  const unsupported = new Map<string, { first: string; count: number }>();
  for (const n of needed) {
    if (Object.hasOwn(OPS, n.opType)) continue;
    const u = unsupported.get(n.opType);
    if (u) u.count++;
    else unsupported.set(n.opType, { first: n.label, count: 1 });
  }
  if (unsupported.size > 0) {
    const list = [...unsupported].map(
      ([op, u]) => `${op} (node "${u.first}"${u.count > 1 ? ` and ${u.count - 1} more` : ''})`,
    );
    bad(
      `unsupported ONNX operator${unsupported.size > 1 ? 's' : ''}: ${list.join('; ')}. ` +
        `Supported: ${SUPPORTED_OPS.join(', ')}`,
    );
  }

  // --- Initializers: trainable params vs constants
  const tensorUse = new Set<string>();
  const hostUse = new Set<string>();
  const statistics = new Set<string>();
  for (const n of needed) {
    n.inputs.forEach((i, k) => {
      if (!initializers.has(i)) return;
      if (isHostInput(n.opType, opset, k)) hostUse.add(i);
      else tensorUse.add(i);
      if (isStatisticInput(n.opType, k)) statistics.add(i);
    });
  }
  const hostInits = new Map<string, HostValue>();
  /** The imported weights, kept on the host so `init` never depends on tensors the caller owns. */
  const weights = new Map<string, Float32Array>();
  const paramShapes: Record<string, number[]> = {};
  for (const name of new Set([...tensorUse, ...hostUse])) {
    const t = initializers.get(name);
    if (!t) continue;
    const decoded = decodeTensor(t, `${source}: initializer "${name}"`);
    if (decoded.kind === 'float' && tensorUse.has(name)) {
      weights.set(name, decoded.data);
      paramShapes[name] = decoded.dims;
    }
    if (decoded.kind === 'int' || hostUse.has(name)) {
      hostInits.set(name, hostValue(decoded.dataType, decoded.dims, Array.from(decoded.data)));
    }
  }
  const freshParams = (): Params => {
    const out: Record<string, tf.Tensor> = {};
    for (const [name, data] of weights) {
      out[name] = tf.tensor(data, paramShapes[name], 'float32');
    }
    return out;
  };
  const params = freshParams();
  const plans = new Map<string, NodeInfo[]>();
  const planFor = (taps: readonly string[]) => {
    const key = taps.join('\u0000');
    let p = plans.get(key);
    if (!p) {
      p = plan([featuresName as string, ...taps]);
      plans.set(key, p);
    }
    return p;
  };

  const run = (
    p: Params,
    x: tf.Tensor,
    order: readonly NodeInfo[],
    mode?: RunMode,
  ): Map<string, Value> => {
    const env = new Map<string, Value>(hostInits);
    for (const [name, shape] of Object.entries(paramShapes)) {
      const t = p[name];
      if (!t) {
        throw new Error(
          `${source}: missing parameter "${name}" (have: ${Object.keys(p).join(', ')})`,
        );
      }
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new Error(
          `${source}: parameter "${name}" has shape [${t.shape}], expected [${shape}]`,
        );
      }
      env.set(name, { kind: 'tensor', onnx: t });
    }
    env.set(inputName, { kind: 'tensor', onnx: x });
    for (const n of order) {
      const values = n.inputs.map((i) => {
        if (i === '') return undefined;
        const v = env.get(i);
        if (!v) {
          const prod = producer.get(i);
          throw new Error(
            `${source}: node "${n.label}" (${n.opType}) reads "${i}", output ` +
              `${prod ? prod.outputs.indexOf(i) : '?'} of node "${prod?.label}" (${prod?.opType}), ` +
              'which is not computed (only the first output of that operator is supported)',
          );
        }
        return v;
      });
      const impl = Object.hasOwn(OPS, n.opType) ? OPS[n.opType] : undefined;
      if (!impl) throw new Error(`${source}: unsupported operator ${n.opType}`);
      const outs = impl(new OpContext(source, n, opset, values, mode));
      outs.forEach((v, k) => {
        const name = n.outputs[k];
        if (name) env.set(name, v);
      });
    }
    return env;
  };

  // --- Dry run on a batch of zeros: shapes of the features and of every tap.
  const candidates = opts.taps
    ? [...opts.taps]
    : needed.flatMap((n) => n.outputs.filter((o) => o !== ''));
  const dependsOnInput = new Set<string>([inputName]);
  for (const n of needed) {
    if (n.inputs.some((i) => dependsOnInput.has(i)))
      for (const o of n.outputs) dependsOnInput.add(o);
  }
  const tapShapes: Record<string, number[]> = {};
  let featureShape: number[] = [];
  const dryRun = () => {
    const x = tf.zeros([dryBatch, ...inputShape]);
    const env = run(params, x, needed);
    const f = env.get(featuresName as string);
    if (!f) {
      const n = producer.get(featuresName as string);
      bad(
        `features "${featuresName}" (output ${n?.outputs.indexOf(featuresName as string)} of node ` +
          `"${n?.label}", ${n?.opType}) are not computed: only the first output of that operator is supported`,
      );
    }
    if (f.kind === 'host' || !dependsOnInput.has(featuresName as string))
      bad(`features "${featuresName}" do not depend on the input "${inputName}"`);
    const fs = shapeOf(f);
    if (fs[0] !== dryBatch)
      bad(`features "${featuresName}" have shape [${fs}]: the batch dimension was not kept`);
    featureShape = fs.slice(1);
    for (const c of candidates) {
      const v = env.get(c);
      if (!v || v.kind === 'host' || !dependsOnInput.has(c)) {
        if (opts.taps) bad(`tap "${c}" is not a tensor computed from the input`);
        continue;
      }
      const s = shapeOf(v);
      const dtype = v.onnx?.dtype ?? v.nhwc?.dtype;
      if (s[0] !== dryBatch || dtype !== 'float32') {
        if (opts.taps) bad(`tap "${c}" has shape [${s}] (${dtype}): not per-example float data`);
        continue;
      }
      tapShapes[c] = s.slice(1);
    }
  };
  try {
    tf.tidy(dryRun);
  } catch (err) {
    disposeParams(params);
    throw err;
  }

  const inputSize = inputShape.reduce((a, b) => a * b, 1);
  const name = graph.name || source;
  const backbone: OnnxBackbone = {
    name,
    source,
    opset,
    inputName,
    featuresName: featuresName as string,
    inputShape,
    featureShape,
    featureDim: featureShape.reduce((a, b) => a * b, 1),
    tapShapes,
    paramShapes,
    nonTrainable: [...statistics].filter((s) => s in paramShapes),
    init: freshParams,
    emitGraph: (g, o) =>
      emitImportedGraph(
        g,
        {
          source,
          opset,
          inputName,
          featuresName: featuresName as string,
          nodes: needed,
          paramShapes,
          constants: hostInits,
        },
        o,
      ),
    apply(p, x, o = {}) {
      const taps = [...(o.taps ?? [])];
      for (const t of taps) {
        if (!(t in tapShapes)) {
          const avail = Object.keys(tapShapes);
          throw new Error(
            `ONNX backbone "${name}" has no tap "${t}". Available taps: ` +
              `${avail.slice(0, 30).join(', ')}${avail.length > 30 ? ', …' : ''}`,
          );
        }
      }
      if (x.size / (x.shape[0] ?? 1) !== inputSize) {
        throw new Error(
          `ONNX backbone "${name}" expects inputs of shape [N, ${inputShape}], got [${x.shape}]`,
        );
      }
      const xin =
        x.shape.length === inputShape.length + 1 &&
        x.shape.slice(1).every((d, i) => d === inputShape[i])
          ? x
          : tf.reshape(x, [x.shape[0] as number, ...inputShape]);
      const training = o.training === true;
      const collected = training ? new Map<string, tf.Tensor>() : undefined;
      const env = run(
        p,
        xin,
        planFor(taps),
        training ? { training, ...(collected ? { statistics: collected } : {}) } : undefined,
      );
      const out = (n: string) => onnxTensor(env.get(n) as Value);
      const tapOut: Record<string, tf.Tensor> = {};
      for (const t of taps) tapOut[t] = out(t);
      const features = out(featuresName as string);
      if (!collected) return { features, taps: tapOut };
      // Only statistics stored as parameters can be carried to the next step.
      const statistics: Record<string, tf.Tensor> = {};
      for (const [k, v] of collected) {
        if (k in paramShapes) statistics[k] = v;
        else v.dispose();
      }
      return { features, taps: tapOut, statistics };
    },
  };
  return { backbone, params };
}

/** Read and import a .onnx file; errors name the path. */
export async function importOnnxFile(
  path: string,
  opts: Omit<ImportOnnxOptions, 'source'> = {},
): Promise<ImportedOnnx> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new Error(`cannot read ONNX file ${path}: ${(err as Error).message}`);
  }
  return importOnnx(bytes, { ...opts, source: path });
}
