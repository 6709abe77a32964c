/**
 * Translate a TensorFlow.js model — a Keras `layers-model` or a converted
 * TensorFlow `graph-model`, with its (possibly quantized) weights — into an
 * ONNX model, so that pretrained tfjs networks run in onnxruntime and import
 * as differentiable backbones with `importOnnx`.
 *
 * The ONNX model takes the tfjs input unchanged (NHWC `[N, H, W, C]` for
 * images) and every output has the shape and element order tfjs gives; inside,
 * image values are NCHW (see onnx-emitter.ts for the naming and layout rules).
 * Only the part of the model needed for the requested outputs is translated,
 * so a classifier can be cut at any layer, and layers past the cut may be of
 * any kind.
 *
 * Keras layers: InputLayer, Conv2D, DepthwiseConv2D, SeparableConv2D,
 * BatchNormalization, Dense, ReLU, LeakyReLU, Activation, Softmax, Add,
 * Subtract, Multiply, Concatenate, ZeroPadding2D, AveragePooling2D,
 * MaxPooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Flatten, Reshape,
 * Dropout-like layers (identity at inference). Activations: linear, relu,
 * relu6, sigmoid, tanh, softmax, swish/silu.
 *
 * Graph ops: Placeholder, Const, Identity, Conv2D, DepthwiseConv2dNative,
 * _FusedConv2D and FusedDepthwiseConv2dNative (BiasAdd or FusedBatchNorm,
 * then Relu, Relu6, LeakyRelu or Sigmoid), MatMul and _FusedMatMul, BiasAdd,
 * Add/AddV2/Sub/Mul/RealDiv, Relu, Relu6, LeakyRelu, Sigmoid, Tanh, Softmax,
 * AvgPool, MaxPool, Mean over height and width, Squeeze, Reshape, Pad/PadV2,
 * ConcatV2, FusedBatchNorm(V3).
 */
import { type Activation, OnnxEmitter, type Padding, type Val } from './onnx-emitter.js';
import {
  decodeTfjsWeights,
  type TfjsModelArtifacts,
  type TfjsModelJson,
  type TfjsWeight,
} from './tfjs-weights.js';

export interface TfjsToOnnxOptions {
  /**
   * Graph outputs, in order: layer names (layers model) or node names (graph
   * model); `name:linear` is a layer's value before its fused activation.
   * Default: the model's outputs.
   */
  outputs?: readonly string[];
  /**
   * Fold each BatchNormalization that alone consumes a Conv2D /
   * DepthwiseConv2D into that convolution's kernel and bias (layers models).
   * Faster, but the running statistics stop being separate parameters.
   * Default false.
   */
  foldBatchNorm?: boolean;
  /** ONNX opset, 13–18. Default 13. */
  opset?: number;
  /** Graph name. Default: the Keras model name, or "tfjs-graph-model". */
  graphName?: string;
  /** Shape of one input example, when the model leaves dimensions unknown. */
  inputShape?: readonly number[];
}

export interface TfjsOnnxValue {
  /** tfjs name: layer or node name (`:linear` for a pre-activation value). */
  name: string;
  /** Keras layer class or TF op. */
  op: string;
  /** Shape of one example in tfjs layout. */
  shape: number[];
}

export interface TfjsOnnxModel {
  /** The ONNX model (bytes of a .onnx file). */
  bytes: Uint8Array;
  format: 'layers-model' | 'graph-model';
  inputName: string;
  /** Shape of one input example (NHWC for images). */
  inputShape: number[];
  outputs: TfjsOnnxValue[];
  /** Every translated value, in graph order: the candidates for cut points and taps. */
  values: TfjsOnnxValue[];
  /** Number of tfjs weight values the translated part reads (before any folding). */
  weightCount: number;
  /** Names of the tfjs weights the translated part reads. */
  weightNames: string[];
}

type Weights = Map<string, TfjsWeight>;

interface Ctx {
  e: OnnxEmitter;
  source: string;
  weights: Weights;
  used: Set<string>;
  vals: Map<string, Val>;
  values: TfjsOnnxValue[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const product = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Topological order of the items needed for `roots` (iterative DFS). */
function topoOrder<T>(
  roots: readonly string[],
  get: (name: string) => T | undefined,
  deps: (item: T) => readonly string[],
  fail: (msg: string) => never,
): T[] {
  const order: T[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  for (const root of roots) {
    if (state.has(root)) continue;
    state.set(root, 'visiting');
    const stack: { name: string; deps: readonly string[]; next: number }[] = [];
    const first = get(root);
    if (first === undefined) fail(`"${root}" is not in the model`);
    stack.push({ name: root, deps: deps(first), next: 0 });
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as (typeof stack)[number];
      if (top.next < top.deps.length) {
        const d = top.deps[top.next++] as string;
        const s = state.get(d);
        if (s === 'visiting') fail(`the model has a cycle through "${d}"`);
        if (s === 'done') continue;
        const item = get(d);
        if (item === undefined) fail(`"${top.name}" reads "${d}", which is not in the model`);
        state.set(d, 'visiting');
        stack.push({ name: d, deps: deps(item), next: 0 });
        continue;
      }
      state.set(top.name, 'done');
      order.push(get(top.name) as T);
      stack.pop();
    }
  }
  return order;
}

/** Requested outputs must name layers (nodes); the error lists the last ones, the likely cut points. */
function checkKnown(
  source: string,
  kind: string,
  wanted: readonly string[],
  known: string[],
): void {
  const set = new Set(known);
  for (const w of wanted) {
    if (set.has(w)) continue;
    const shown = known.slice(-30);
    throw new Error(
      `${source}: no ${kind} "${w}" (${known.length} ${kind}s, ` +
        `${shown.length < known.length ? 'the last ones: ' : ''}${shown.join(', ')})`,
    );
  }
}

function unsupportedError(
  source: string,
  kind: string,
  items: readonly { type: string; name: string }[],
  supported: readonly string[],
): Error | undefined {
  const found = new Map<string, { first: string; count: number }>();
  for (const { type, name } of items) {
    const f = found.get(type);
    if (f) f.count++;
    else found.set(type, { first: name, count: 1 });
  }
  if (found.size === 0) return undefined;
  const list = [...found].map(
    ([t, f]) => `${t} ("${f.first}"${f.count > 1 ? ` and ${f.count - 1} more` : ''})`,
  );
  return new Error(
    `${source}: unsupported ${kind}${found.size > 1 ? 's' : ''}: ${list.join('; ')}. ` +
      `Supported: ${[...supported].sort().join(', ')}`,
  );
}

/** Remember a translated value (and its pre-activation value, if the layer has one). */
function record(ctx: Ctx, name: string, op: string, v: Val): void {
  const pre = ctx.vals.get(`${name}:linear`);
  if (pre)
    ctx.values.push({
      name: `${name}:linear`,
      op: `${op} (before activation)`,
      shape: [...pre.shape],
    });
  ctx.vals.set(name, v);
  ctx.values.push({ name, op, shape: [...v.shape] });
}

function floatWeight(ctx: Ctx, w: TfjsWeight, where: string): Float32Array {
  if (w.dtype !== 'float32') ctx.e.fail(where, `weight "${w.name}" is ${w.dtype}, not float32`);
  return w.data;
}

function finish(
  ctx: Ctx,
  format: TfjsOnnxModel['format'],
  input: { name: string; shape: number[] },
  outputs: readonly string[],
  opset: number,
  docString: string,
): TfjsOnnxModel {
  const outs: TfjsOnnxValue[] = [];
  for (const o of outputs) {
    const v = ctx.vals.get(o);
    if (!v) {
      ctx.e.fail(
        `output "${o}"`,
        `no such value. Values: ${ctx.values
          .slice(-40)
          .map((x) => x.name)
          .join(', ')}${ctx.values.length > 40 ? ' (last 40 shown)' : ''}`,
      );
    }
    ctx.e.output(v, o);
    outs.push({ name: o, op: ctx.values.find((x) => x.name === o)?.op ?? '', shape: [...v.shape] });
  }
  const weightNames = [...ctx.used];
  return {
    bytes: ctx.e.g.toBytes({ opset, producerName: 'transferlab tfjs-to-onnx', docString }),
    format,
    inputName: input.name,
    inputShape: input.shape,
    outputs: outs,
    values: ctx.values,
    weightCount: weightNames.reduce((n, w) => n + (ctx.weights.get(w)?.data.length ?? 0), 0),
    weightNames,
  };
}

/** Translate a tfjs model (model.json + weights) to ONNX. */
export function tfjsToOnnx(
  artifacts: TfjsModelArtifacts,
  opts: TfjsToOnnxOptions = {},
): TfjsOnnxModel {
  const { source, modelJson } = artifacts;
  const opset = opts.opset ?? 13;
  if (!Number.isInteger(opset) || opset < 13 || opset > 18)
    throw new Error(`tfjsToOnnx: opset ${opset} is not supported (use 13–18)`);
  const topology = modelJson.modelTopology;
  if (!isRecord(topology)) throw new Error(`${source}: modelTopology is not an object`);
  const isGraph = modelJson.format === 'graph-model' || Array.isArray(topology.node);
  const weights = decodeTfjsWeights(modelJson, artifacts.weightData, source);
  return isGraph
    ? translateGraphModel(source, modelJson, weights, opts, opset)
    : translateLayersModel(source, topology, weights, opts, opset);
}

// ---------------------------------------------------------------------------
// Keras layers models

interface KerasLayer {
  name: string;
  cls: string;
  config: Record<string, unknown>;
  inbound: string[];
}

const KERAS_IDENTITY = new Set([
  'Dropout',
  'SpatialDropout2D',
  'GaussianDropout',
  'GaussianNoise',
  'AlphaDropout',
  'ActivityRegularization',
]);

const KERAS_LAYERS = [
  'InputLayer',
  'Conv2D',
  'DepthwiseConv2D',
  'SeparableConv2D',
  'BatchNormalization',
  'Dense',
  'ReLU',
  'LeakyReLU',
  'Activation',
  'Softmax',
  'Add',
  'Subtract',
  'Multiply',
  'Concatenate',
  'ZeroPadding2D',
  'AveragePooling2D',
  'MaxPooling2D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'Flatten',
  'Reshape',
  ...KERAS_IDENTITY,
];

function parseKerasTopology(
  topology: Record<string, unknown>,
  source: string,
): { name: string; layers: KerasLayer[]; inputs: string[]; outputs: string[] } {
  const bad = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  const mc = isRecord(topology.model_config) ? topology.model_config : topology;
  const cls = mc.class_name;
  const cfg = mc.config;
  const tensorName = (t: unknown, where: string): string => {
    if (!Array.isArray(t) || typeof t[0] !== 'string')
      bad(`${where}: expected [layerName, nodeIndex, tensorIndex], got ${JSON.stringify(t)}`);
    const [name, node, tensor] = t as [string, unknown, unknown];
    if ((node ?? 0) !== 0 || (tensor ?? 0) !== 0)
      bad(`${where}: layers called more than once or with several outputs are not supported`);
    return name;
  };
  if (cls === 'Sequential') {
    const list = Array.isArray(cfg) ? cfg : isRecord(cfg) ? cfg.layers : undefined;
    if (!Array.isArray(list) || list.length === 0) bad('the Sequential model has no layers');
    const layers: KerasLayer[] = [];
    const raw = list as Record<string, unknown>[];
    const first = raw[0] as Record<string, unknown>;
    if (first.class_name !== 'InputLayer') {
      const fc = isRecord(first.config) ? first.config : {};
      const shape = fc.batch_input_shape ?? fc.batch_shape;
      if (!Array.isArray(shape)) bad('the first layer of the Sequential model has no input shape');
      layers.push({
        name: 'input',
        cls: 'InputLayer',
        config: { batch_input_shape: shape },
        inbound: [],
      });
    }
    for (const l of raw) {
      const c = isRecord(l.config) ? l.config : {};
      const name = typeof c.name === 'string' ? c.name : String(l.name ?? '');
      const prev = layers[layers.length - 1];
      layers.push({
        name,
        cls: String(l.class_name),
        config: c,
        inbound: prev ? [prev.name] : [],
      });
    }
    const nm = isRecord(cfg) && typeof cfg.name === 'string' ? cfg.name : 'sequential';
    const input = (layers[0] as KerasLayer).name;
    return {
      name: nm,
      layers,
      inputs: [input],
      outputs: [(layers[layers.length - 1] as KerasLayer).name],
    };
  }
  if (cls !== 'Model' && cls !== 'Functional')
    bad(`model class ${String(cls)} is not supported (Sequential, Model/Functional are)`);
  if (!isRecord(cfg) || !Array.isArray(cfg.layers)) bad('the model config has no layers');
  const c = cfg as Record<string, unknown>;
  const layers = (c.layers as unknown[]).map((l, i): KerasLayer => {
    if (!isRecord(l)) return bad(`layer ${i} is not an object`);
    const name = String(l.name ?? (isRecord(l.config) ? l.config.name : ''));
    const where = `layer "${name}"`;
    const nodes = Array.isArray(l.inbound_nodes) ? l.inbound_nodes : [];
    if (nodes.length > 1)
      bad(`${where} is called ${nodes.length} times (shared layers are not supported)`);
    const node = nodes[0] ?? [];
    if (!Array.isArray(node))
      bad(`${where}: inbound nodes in the Keras 3 format are not supported (Keras 2 format is)`);
    return {
      name,
      cls: String(l.class_name),
      config: isRecord(l.config) ? l.config : {},
      inbound: (node as unknown[]).map((t) => tensorName(t, where)),
    };
  });
  const ends = (v: unknown, what: string): string[] => {
    if (!Array.isArray(v) || v.length === 0) return bad(`the model config has no ${what}`);
    return typeof v[0] === 'string' ? [tensorName(v, what)] : v.map((t) => tensorName(t, what));
  };
  return {
    name: typeof c.name === 'string' ? c.name : 'model',
    layers,
    inputs: ends(c.input_layers, 'input_layers'),
    outputs: ends(c.output_layers, 'output_layers'),
  };
}

function translateLayersModel(
  source: string,
  topology: Record<string, unknown>,
  weights: Weights,
  opts: TfjsToOnnxOptions,
  opset: number,
): TfjsOnnxModel {
  const model = parseKerasTopology(topology, source);
  const byName = new Map<string, KerasLayer>();
  for (const l of model.layers) {
    if (byName.has(l.name)) throw new Error(`${source}: two layers are named "${l.name}"`);
    byName.set(l.name, l);
  }
  const outputs = [...(opts.outputs ?? model.outputs)];
  const base = (o: string) => o.replace(/:linear$/, '');
  checkKnown(source, 'layer', outputs.map(base), [...byName.keys()]);
  const order = topoOrder(
    outputs.map(base),
    (n) => byName.get(n),
    (l) => l.inbound,
    (msg) => {
      throw new Error(`${source}: ${msg}`);
    },
  );
  const err = unsupportedError(
    source,
    'Keras layer',
    order.filter((l) => !KERAS_LAYERS.includes(l.cls)).map((l) => ({ type: l.cls, name: l.name })),
    KERAS_LAYERS,
  );
  if (err) throw err;
  const inputs = order.filter((l) => l.cls === 'InputLayer');
  if (inputs.length !== 1)
    throw new Error(
      `${source}: the translated part must have exactly one input layer, found ${inputs.length}` +
        ` (${inputs.map((l) => l.name).join(', ')})`,
    );
  const consumers = new Map<string, number>();
  for (const l of order) for (const i of l.inbound) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  const requested = new Set(outputs.map(base));

  const ctx: Ctx = {
    e: new OnnxEmitter(source, opts.graphName ?? model.name),
    source,
    weights,
    used: new Set(),
    vals: new Map(),
    values: [],
  };
  const folded = new Map<string, Val>();
  let input = { name: '', shape: [] as number[] };
  for (const l of order) {
    const pre = folded.get(l.name);
    let v: Val;
    if (pre) {
      v = pre;
    } else if (l.cls === 'InputLayer') {
      const shape = l.config.batch_input_shape ?? l.config.batch_shape;
      if (!Array.isArray(shape)) throw new Error(`${source}: input layer "${l.name}" has no shape`);
      const perExample = opts.inputShape
        ? [...opts.inputShape]
        : (shape.slice(1) as (number | null)[]);
      if (perExample.some((d) => typeof d !== 'number' || d <= 0))
        throw new Error(
          `${source}: input "${l.name}" has shape [${shape.map((d) => d ?? '?')}]: pass inputShape`,
        );
      input = { name: l.name, shape: perExample as number[] };
      v = ctx.e.input(l.name, input.shape);
    } else {
      const ins = l.inbound.map((i) => ctx.vals.get(i) as Val);
      const next = foldTarget(l, order, consumers, requested, opts.foldBatchNorm === true);
      v = kerasLayer(ctx, l, ins, next);
      if (next) {
        // The convolution's own output no longer exists: only the folded BN's.
        folded.set(next.name, v);
        continue;
      }
    }
    record(ctx, l.name, l.cls, v);
  }
  return finish(ctx, 'layers-model', input, outputs, opset, `translated from ${source}`);
}

/** The BatchNormalization layer to fold into conv layer `l`, if folding applies. */
function foldTarget(
  l: KerasLayer,
  order: readonly KerasLayer[],
  consumers: ReadonlyMap<string, number>,
  requested: ReadonlySet<string>,
  enabled: boolean,
): KerasLayer | undefined {
  if (!enabled || (l.cls !== 'Conv2D' && l.cls !== 'DepthwiseConv2D')) return undefined;
  if ((l.config.activation ?? 'linear') !== 'linear') return undefined;
  if (consumers.get(l.name) !== 1 || requested.has(l.name)) return undefined;
  const next = order.find((o) => o.inbound.includes(l.name));
  if (next?.cls !== 'BatchNormalization') return undefined;
  const axis = Array.isArray(next.config.axis) ? next.config.axis[0] : (next.config.axis ?? -1);
  return axis === -1 || axis === 3 ? next : undefined;
}

function cfgPair(ctx: Ctx, v: unknown, where: string, what: string): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((d) => typeof d === 'number'))
    return [v[0] as number, v[1] as number];
  return ctx.e.fail(where, `${what} should be a number or a pair, got ${JSON.stringify(v)}`);
}

function kerasActivation(ctx: Ctx, v: unknown, where: string): Activation {
  const a = typeof v === 'string' ? v : v == null ? 'linear' : JSON.stringify(v);
  switch (a) {
    case 'linear':
    case 'relu':
    case 'relu6':
    case 'sigmoid':
    case 'tanh':
    case 'softmax':
    case 'swish':
      return { kind: a };
    case 'silu':
      return { kind: 'swish' };
    default:
      return ctx.e.fail(
        where,
        `activation ${a} is not supported (linear, relu, relu6, sigmoid, tanh, softmax, swish)`,
      );
  }
}

function kerasWeight(
  ctx: Ctx,
  layer: string,
  suffix: string,
  where: string,
): { name: string; data: Float32Array; shape: number[] } {
  const exact = `${layer}/${suffix}`;
  let w = ctx.weights.get(exact);
  if (!w) {
    const found = [...ctx.weights.values()].filter((x) => x.name.endsWith(`/${exact}`));
    if (found.length > 1)
      ctx.e.fail(where, `several weights match "${exact}": ${found.map((x) => x.name).join(', ')}`);
    w = found[0];
  }
  if (!w) ctx.e.fail(where, `weight "${exact}" is missing from the weights manifest`);
  ctx.used.add(w.name);
  return { name: w.name, data: floatWeight(ctx, w, where), shape: w.shape };
}

function kerasPadding(ctx: Ctx, v: unknown, where: string): Padding {
  if (v === 'same' || v === 'valid') return v;
  return ctx.e.fail(where, `padding ${JSON.stringify(v)} is not supported ('same', 'valid')`);
}

function checkChannelsLast(ctx: Ctx, l: KerasLayer, where: string): void {
  const f = l.config.data_format;
  if (f !== undefined && f !== null && f !== 'channels_last')
    ctx.e.fail(where, `data_format ${String(f)} is not supported (channels_last is)`);
}

/** Emit conv + activation with the naming convention (`name:linear` before the activation). */
function convWithActivation(
  ctx: Ctx,
  name: string,
  act: Activation,
  conv: (outName: string) => Val,
): Val {
  if (act.kind === 'linear') return conv(name);
  const pre = conv(`${name}:linear`);
  ctx.vals.set(`${name}:linear`, pre);
  return ctx.e.activation(pre, act, name);
}

function bnParams(ctx: Ctx, l: KerasLayer, where: string) {
  const c = l.config;
  const w = (s: string) => kerasWeight(ctx, l.name, s, where);
  return {
    gamma: c.scale === false ? undefined : w('gamma'),
    beta: c.center === false ? undefined : w('beta'),
    mean: w('moving_mean'),
    variance: w('moving_variance'),
    epsilon: typeof c.epsilon === 'number' ? c.epsilon : 1e-3,
  };
}

function kerasLayer(ctx: Ctx, l: KerasLayer, ins: Val[], foldBn: KerasLayer | undefined): Val {
  const where = `layer "${l.name}" (${l.cls})`;
  const c = l.config;
  const e: OnnxEmitter = ctx.e;
  const x = ins[0] as Val;
  if (ins.length === 0) e.fail(where, 'has no input');
  if (KERAS_IDENTITY.has(l.cls)) return x;
  switch (l.cls) {
    case 'Conv2D':
    case 'DepthwiseConv2D': {
      checkChannelsLast(ctx, l, where);
      const depthwise = l.cls === 'DepthwiseConv2D';
      if (!depthwise && (c.groups ?? 1) !== 1)
        e.fail(where, 'grouped convolutions are not supported');
      const k = kerasWeight(ctx, l.name, depthwise ? 'depthwise_kernel' : 'kernel', where);
      if (k.shape.length !== 4) e.fail(where, `kernel has shape [${k.shape}], expected rank 4`);
      let kernel = k.data;
      let bias = c.use_bias === false ? undefined : kerasWeight(ctx, l.name, 'bias', where).data;
      let kernelName = k.name;
      let biasName = `${l.name}/bias`;
      let outName = l.name;
      if (foldBn) {
        // Fold y = γ (conv(x) + b − μ) / √(σ² + ε) + β into the kernel and bias (in float64).
        const p = bnParams(ctx, foldBn, `layer "${foldBn.name}" (BatchNormalization)`);
        const cout = depthwise
          ? (k.shape[2] as number) * (k.shape[3] as number)
          : (k.shape[3] as number);
        const s = Float64Array.from({ length: cout }, (_, o) => {
          const g = p.gamma ? (p.gamma.data[o] as number) : 1;
          return g / Math.sqrt((p.variance.data[o] as number) + p.epsilon);
        });
        kernel = Float32Array.from(kernel, (v, i) => v * (s[i % cout] as number));
        bias = Float32Array.from(
          { length: cout },
          (_, o) =>
            ((bias?.[o] ?? 0) - (p.mean.data[o] as number)) * (s[o] as number) +
            (p.beta ? (p.beta.data[o] as number) : 0),
        );
        kernelName = `${k.name}:folded`;
        biasName = `${l.name}/bias:folded`;
        outName = foldBn.name;
      }
      const act = kerasActivation(ctx, c.activation, where);
      return convWithActivation(ctx, outName, act, (name) =>
        e.conv(x, {
          name,
          kernel,
          kernelShape: k.shape as [number, number, number, number],
          kernelName,
          depthwise,
          bias,
          biasName,
          strides: cfgPair(ctx, c.strides ?? 1, where, 'strides'),
          dilations: cfgPair(ctx, c.dilation_rate ?? 1, where, 'dilation_rate'),
          padding: kerasPadding(ctx, c.padding ?? 'valid', where),
        }),
      );
    }
    case 'SeparableConv2D': {
      checkChannelsLast(ctx, l, where);
      const dk = kerasWeight(ctx, l.name, 'depthwise_kernel', where);
      const pk = kerasWeight(ctx, l.name, 'pointwise_kernel', where);
      const bias = c.use_bias === false ? undefined : kerasWeight(ctx, l.name, 'bias', where).data;
      const mid = e.conv(x, {
        name: `${l.name}:depthwise`,
        kernel: dk.data,
        kernelShape: dk.shape as [number, number, number, number],
        kernelName: dk.name,
        depthwise: true,
        strides: cfgPair(ctx, c.strides ?? 1, where, 'strides'),
        dilations: cfgPair(ctx, c.dilation_rate ?? 1, where, 'dilation_rate'),
        padding: kerasPadding(ctx, c.padding ?? 'valid', where),
      });
      const act = kerasActivation(ctx, c.activation, where);
      return convWithActivation(ctx, l.name, act, (name) =>
        e.conv(mid, {
          name,
          kernel: pk.data,
          kernelShape: pk.shape as [number, number, number, number],
          kernelName: pk.name,
          depthwise: false,
          bias,
          biasName: `${l.name}/bias`,
          strides: [1, 1],
          dilations: [1, 1],
          padding: 'valid',
        }),
      );
    }
    case 'BatchNormalization': {
      const axis = Array.isArray(c.axis) ? c.axis[0] : (c.axis ?? -1);
      if (axis !== -1 && axis !== x.shape.length)
        e.fail(where, `axis ${JSON.stringify(c.axis)} is not supported (the last axis is)`);
      return e.batchNorm(x, l.name, bnParams(ctx, l, where));
    }
    case 'Dense': {
      const k = kerasWeight(ctx, l.name, 'kernel', where);
      const b = c.use_bias === false ? undefined : kerasWeight(ctx, l.name, 'bias', where);
      const act = kerasActivation(ctx, c.activation, where);
      if (k.shape.length !== 2) e.fail(where, `kernel has shape [${k.shape}], expected rank 2`);
      const name = act.kind === 'linear' ? l.name : `${l.name}:linear`;
      const y = e.dense(x, { ...k, shape: k.shape as [number, number] }, b, name);
      if (act.kind === 'linear') return y;
      ctx.vals.set(name, y);
      return e.activation(y, act, l.name);
    }
    case 'ReLU': {
      const max = c.max_value ?? null;
      const slope = typeof c.negative_slope === 'number' ? c.negative_slope : 0;
      const threshold = typeof c.threshold === 'number' ? c.threshold : 0;
      if (threshold !== 0) e.fail(where, 'a non-zero threshold is not supported');
      if (slope === 0) {
        if (max === null) return e.activation(x, { kind: 'relu' }, l.name);
        if (typeof max !== 'number') return e.fail(where, `max_value ${JSON.stringify(max)}`);
        return e.activation(
          x,
          max === 6 ? { kind: 'relu6' } : { kind: 'clip', min: 0, max },
          l.name,
        );
      }
      if (max !== null) e.fail(where, 'negative_slope together with max_value is not supported');
      return e.activation(x, { kind: 'leaky', alpha: slope }, l.name);
    }
    case 'LeakyReLU': {
      const alpha = c.alpha ?? c.negative_slope ?? 0.3;
      if (typeof alpha !== 'number') return e.fail(where, `alpha ${JSON.stringify(alpha)}`);
      return e.activation(x, { kind: 'leaky', alpha }, l.name);
    }
    case 'Activation':
      return e.activation(x, kerasActivation(ctx, c.activation, where), l.name);
    case 'Softmax': {
      const axis = Array.isArray(c.axis) ? c.axis[0] : (c.axis ?? -1);
      if (axis !== -1 && axis !== x.shape.length) e.fail(where, 'only the last axis is supported');
      return e.activation(x, { kind: 'softmax' }, l.name);
    }
    case 'Add':
    case 'Multiply':
    case 'Subtract': {
      if (ins.length < 2) e.fail(where, 'needs at least two inputs');
      if (l.cls === 'Subtract' && ins.length !== 2) e.fail(where, 'needs exactly two inputs');
      const op = l.cls === 'Add' ? 'Add' : l.cls === 'Multiply' ? 'Mul' : 'Sub';
      let acc = x;
      ins.slice(1).forEach((y, i) => {
        acc = e.binary(op, acc, y, i === ins.length - 2 ? l.name : `${l.name}:${i}`);
      });
      return acc;
    }
    case 'Concatenate': {
      const axis = typeof c.axis === 'number' ? c.axis : -1;
      return e.concat(ins, axis < 0 ? axis : axis - 1, l.name);
    }
    case 'ZeroPadding2D': {
      checkChannelsLast(ctx, l, where);
      const p = c.padding ?? 1;
      let pads: [[number, number], [number, number]];
      if (typeof p === 'number') {
        pads = [
          [p, p],
          [p, p],
        ];
      } else if (Array.isArray(p) && p.length === 2 && p.every((d) => typeof d === 'number')) {
        const [ph, pw] = p as [number, number];
        pads = [
          [ph, ph],
          [pw, pw],
        ];
      } else if (Array.isArray(p) && p.length === 2 && p.every(Array.isArray)) {
        pads = [cfgPair(ctx, p[0], where, 'padding'), cfgPair(ctx, p[1], where, 'padding')];
      } else {
        return e.fail(where, `padding ${JSON.stringify(p)} is not supported`);
      }
      return e.pad(x, pads, l.name);
    }
    case 'AveragePooling2D':
    case 'MaxPooling2D': {
      checkChannelsLast(ctx, l, where);
      const k = cfgPair(ctx, c.pool_size ?? 2, where, 'pool_size');
      const s = c.strides == null ? k : cfgPair(ctx, c.strides, where, 'strides');
      return e.pool(
        x,
        l.cls === 'AveragePooling2D' ? 'avg' : 'max',
        k,
        s,
        kerasPadding(ctx, c.padding ?? 'valid', where),
        l.name,
      );
    }
    case 'GlobalAveragePooling2D':
    case 'GlobalMaxPooling2D':
      checkChannelsLast(ctx, l, where);
      return e.globalPool(
        x,
        l.cls === 'GlobalAveragePooling2D' ? 'avg' : 'max',
        c.keepdims === true,
        l.name,
      );
    case 'Flatten':
      return e.flatten(x, l.name);
    case 'Reshape': {
      const t = c.target_shape;
      if (!Array.isArray(t) || !t.every((d) => typeof d === 'number'))
        e.fail(where, `target_shape ${JSON.stringify(t)} is not supported`);
      const shape = [...(t as number[])];
      const unknown = shape.indexOf(-1);
      if (unknown >= 0)
        shape[unknown] = product(x.shape) / product(shape.filter((_, i) => i !== unknown));
      return e.reshape(x, shape, l.name);
    }
    default:
      return e.fail(where, 'layer class not supported');
  }
}

// ---------------------------------------------------------------------------
// TensorFlow graph models

interface TfAttr {
  s?: string;
  i?: string | number;
  f?: number;
  b?: boolean;
  type?: string;
  shape?: { dim?: { size?: string | number }[]; unknownRank?: boolean };
  list?: { s?: string[]; i?: (string | number)[]; f?: number[] };
}

interface TfNode {
  name: string;
  op: string;
  input: string[];
  attr: Record<string, TfAttr>;
}

const TF_OPS = [
  'Placeholder',
  'Const',
  'Identity',
  'StopGradient',
  'NoOp',
  'Conv2D',
  '_FusedConv2D',
  'DepthwiseConv2dNative',
  'FusedDepthwiseConv2dNative',
  'MatMul',
  '_FusedMatMul',
  'BiasAdd',
  'Add',
  'AddV2',
  'Sub',
  'Mul',
  'RealDiv',
  'Relu',
  'Relu6',
  'LeakyRelu',
  'Sigmoid',
  'Tanh',
  'Softmax',
  'AvgPool',
  'MaxPool',
  'Mean',
  'Squeeze',
  'Reshape',
  'Pad',
  'PadV2',
  'ConcatV2',
  'FusedBatchNorm',
  'FusedBatchNormV3',
];

function decodeB64(s: string): string {
  return Buffer.from(s, 'base64').toString('utf8');
}

/** "name:0" → "name"; control inputs ("^name") → undefined. */
function inputRef(ref: string, where: string, source: string): string | undefined {
  if (ref.startsWith('^')) return undefined;
  const m = /^(.*):(\d+)$/.exec(ref);
  if (m) {
    if (m[2] !== '0')
      throw new Error(
        `${source}: ${where} reads output ${m[2]} of "${m[1]}" (only output 0 is supported)`,
      );
    return m[1] as string;
  }
  return ref;
}

function translateGraphModel(
  source: string,
  modelJson: TfjsModelJson,
  weights: Weights,
  opts: TfjsToOnnxOptions,
  opset: number,
): TfjsOnnxModel {
  const topology = modelJson.modelTopology as { node: unknown[] };
  const nodes = new Map<string, TfNode>();
  for (const raw of topology.node) {
    if (!isRecord(raw) || typeof raw.name !== 'string' || typeof raw.op !== 'string')
      throw new Error(`${source}: a graph node has no name or op: ${JSON.stringify(raw)}`);
    const node: TfNode = {
      name: raw.name,
      op: raw.op,
      input: [],
      attr: isRecord(raw.attr) ? (raw.attr as Record<string, TfAttr>) : {},
    };
    for (const r of Array.isArray(raw.input) ? (raw.input as string[]) : []) {
      const ref = inputRef(r, `node "${raw.name}"`, source);
      if (ref !== undefined) node.input.push(ref);
    }
    if (nodes.has(node.name))
      throw new Error(`${source}: two graph nodes are named "${node.name}"`);
    nodes.set(node.name, node);
  }
  const outputs = [...(opts.outputs ?? defaultGraphOutputs(modelJson, nodes, source))];
  const base = (o: string) => o.replace(/:linear$/, '');
  checkKnown(
    source,
    'node',
    outputs.map(base),
    [...nodes.values()].filter((n) => n.op !== 'Const').map((n) => n.name),
  );
  const order = topoOrder(
    outputs.map(base),
    (n) => nodes.get(n),
    (n) => n.input,
    (msg) => {
      throw new Error(`${source}: ${msg}`);
    },
  );
  const err = unsupportedError(
    source,
    'TensorFlow op',
    order.filter((n) => !TF_OPS.includes(n.op)).map((n) => ({ type: n.op, name: n.name })),
    TF_OPS,
  );
  if (err) throw err;
  const placeholders = order.filter((n) => n.op === 'Placeholder');
  if (placeholders.length !== 1)
    throw new Error(
      `${source}: the translated part must have exactly one Placeholder input, found ${placeholders.length}`,
    );
  const ctx: Ctx = {
    e: new OnnxEmitter(source, opts.graphName ?? 'tfjs-graph-model'),
    source,
    weights,
    used: new Set(),
    vals: new Map(),
    values: [],
  };
  let input = { name: '', shape: [] as number[] };
  for (const n of order) {
    if (n.op === 'Const' || n.op === 'NoOp' || isConst(nodes, n.name)) continue;
    let v: Val;
    if (n.op === 'Placeholder') {
      const dims = (n.attr.shape?.shape?.dim ?? []).map((d) => Number(d.size ?? -1));
      const perExample = opts.inputShape ? [...opts.inputShape] : dims.slice(1);
      if (dims.length < 2 || perExample.some((d) => !(d > 0)))
        throw new Error(`${source}: input "${n.name}" has shape [${dims}]: pass inputShape`);
      input = { name: n.name, shape: perExample };
      v = ctx.e.input(n.name, perExample);
    } else {
      v = tfNode(ctx, nodes, n);
    }
    record(ctx, n.name, n.op, v);
  }
  return finish(ctx, 'graph-model', input, outputs, opset, `translated from ${source}`);
}

function defaultGraphOutputs(
  modelJson: TfjsModelJson,
  nodes: ReadonlyMap<string, TfNode>,
  source: string,
): string[] {
  const meta = isRecord(modelJson.userDefinedMetadata) ? modelJson.userDefinedMetadata : {};
  const sig = isRecord(modelJson.signature) ? modelJson.signature : meta.signature;
  if (isRecord(sig) && isRecord(sig.outputs)) {
    const names = Object.values(sig.outputs)
      .map((o) => (isRecord(o) && typeof o.name === 'string' ? o.name : undefined))
      .filter((o): o is string => o !== undefined)
      .map((o) => inputRef(o, 'signature', source) as string);
    if (names.length > 0) return names;
  }
  const consumed = new Set<string>();
  for (const n of nodes.values()) for (const i of n.input) consumed.add(i);
  return [...nodes.values()]
    .filter((n) => !consumed.has(n.name) && n.op !== 'Const' && n.op !== 'NoOp')
    .map((n) => n.name);
}

/** A Const node, or an Identity chain ending at one. */
function isConst(nodes: ReadonlyMap<string, TfNode>, name: string): boolean {
  let n = nodes.get(name);
  while (n && n.op === 'Identity' && n.input.length === 1) n = nodes.get(n.input[0] as string);
  return n?.op === 'Const';
}

function tfNode(ctx: Ctx, nodes: ReadonlyMap<string, TfNode>, n: TfNode): Val {
  const e: OnnxEmitter = ctx.e;
  const where = `node "${n.name}" (${n.op})`;
  const a = n.attr;
  const str = (k: string) => (a[k]?.s !== undefined ? decodeB64(a[k].s as string) : undefined);
  const ints = (k: string) => a[k]?.list?.i?.map(Number);
  const float = (k: string, def: number) => (a[k]?.f !== undefined ? Number(a[k].f) : def);
  const bool = (k: string) => a[k]?.b === true;
  const constant = (i: number): TfjsWeight => {
    let name = n.input[i];
    if (name === undefined) return e.fail(where, `input ${i} is missing`);
    let node = nodes.get(name);
    while (node && node.op === 'Identity') {
      name = node.input[0] as string;
      node = nodes.get(name);
    }
    if (node?.op !== 'Const') e.fail(where, `input ${i} ("${n.input[i]}") must be a constant`);
    const w = ctx.weights.get(name);
    if (!w) return e.fail(where, `constant "${name}" is missing from the weights manifest`);
    ctx.used.add(name);
    return w;
  };
  const floatConst = (i: number) => {
    const w = constant(i);
    return { name: w.name, data: floatWeight(ctx, w, where), shape: w.shape };
  };
  const tensor = (i: number): Val => {
    const name = n.input[i];
    const v = name === undefined ? undefined : ctx.vals.get(name);
    if (!v) return e.fail(where, `input ${i} ("${name}") must be a tensor computed from the input`);
    return v;
  };
  const checkNhwc = () => {
    const f = str('data_format');
    if (f !== undefined && f !== 'NHWC')
      e.fail(where, `data_format ${f} is not supported (NHWC is)`);
  };
  const padding = (): Padding => {
    const p = str('padding');
    if (p === 'SAME') return 'same';
    if (p === 'VALID') return 'valid';
    if (p === 'EXPLICIT') {
      const ep = ints('explicit_paddings') ?? [];
      if (ep.length !== 8 || ep[0] || ep[1] || ep[6] || ep[7])
        e.fail(where, `explicit_paddings [${ep}] must pad only height and width`);
      return [
        [ep[2] as number, ep[3] as number],
        [ep[4] as number, ep[5] as number],
      ];
    }
    return e.fail(where, `padding ${String(p)} is not supported`);
  };
  const spatial = (k: string): [number, number] => {
    const v = ints(k) ?? [1, 1, 1, 1];
    if (v.length !== 4 || v[0] !== 1 || v[3] !== 1)
      e.fail(where, `${k} [${v}] must be [1, h, w, 1]`);
    return [v[1] as number, v[2] as number];
  };
  const fusedActivation = (ops: string[]): Activation => {
    if (ops.length === 0) return { kind: 'linear' };
    if (ops.length > 1) e.fail(where, `fused ops [${ops}] are not supported`);
    switch (ops[0]) {
      case 'Relu':
        return { kind: 'relu' };
      case 'Relu6':
        return { kind: 'relu6' };
      case 'Sigmoid':
        return { kind: 'sigmoid' };
      case 'LeakyRelu':
        return { kind: 'leaky', alpha: float('leakyrelu_alpha', 0.2) };
      default:
        return e.fail(where, `fused activation ${ops[0]} is not supported`);
    }
  };
  const fusedOps = () => (a.fused_ops?.list?.s ?? []).map(decodeB64);

  switch (n.op) {
    case 'Identity':
    case 'StopGradient':
      return tensor(0);
    case 'Conv2D':
    case '_FusedConv2D':
    case 'DepthwiseConv2dNative':
    case 'FusedDepthwiseConv2dNative': {
      checkNhwc();
      const x = tensor(0);
      const k = floatConst(1);
      if (k.shape.length !== 4) e.fail(where, `filter has shape [${k.shape}], expected rank 4`);
      const depthwise = n.op.includes('Depthwise');
      let ops = fusedOps();
      let bias: Float32Array | undefined;
      let biasName: string | undefined;
      let bn: Parameters<OnnxEmitter['batchNorm']>[2] | undefined;
      if (ops[0] === 'BiasAdd') {
        const b = floatConst(2);
        bias = b.data;
        biasName = b.name;
        ops = ops.slice(1);
      } else if (ops[0] === 'FusedBatchNorm') {
        const [scale, offset, mean, variance] = [2, 3, 4, 5].map(floatConst) as [
          ReturnType<typeof floatConst>,
          ReturnType<typeof floatConst>,
          ReturnType<typeof floatConst>,
          ReturnType<typeof floatConst>,
        ];
        bn = { gamma: scale, beta: offset, mean, variance, epsilon: float('epsilon', 1e-3) };
        ops = ops.slice(1);
      }
      const act = fusedActivation(ops);
      return convWithActivation(ctx, n.name, act, (name) => {
        const conv = e.conv(x, {
          name: bn ? `${name}:conv` : name,
          kernel: k.data,
          kernelShape: k.shape as [number, number, number, number],
          kernelName: k.name,
          depthwise,
          bias,
          biasName,
          strides: spatial('strides'),
          dilations: spatial('dilations'),
          padding: padding(),
        });
        return bn ? e.batchNorm(conv, name, bn) : conv;
      });
    }
    case 'MatMul':
    case '_FusedMatMul': {
      if (bool('transpose_a')) e.fail(where, 'transpose_a is not supported');
      const x = tensor(0);
      const w = floatConst(1);
      if (w.shape.length !== 2) e.fail(where, `weights have shape [${w.shape}], expected rank 2`);
      let ops = n.op === 'MatMul' ? [] : fusedOps();
      let b: { name: string; data: Float32Array } | undefined;
      if (ops[0] === 'BiasAdd') {
        b = floatConst(2);
        ops = ops.slice(1);
      }
      const act = fusedActivation(ops);
      const name = act.kind === 'linear' ? n.name : `${n.name}:linear`;
      const y = e.dense(
        x,
        { ...w, shape: w.shape as [number, number] },
        b,
        name,
        bool('transpose_b'),
      );
      if (act.kind === 'linear') return y;
      ctx.vals.set(name, y);
      return e.activation(y, act, n.name);
    }
    case 'BiasAdd':
      checkNhwc();
      return e.binaryConst('Add', tensor(0), floatConst(1), n.name);
    case 'Add':
    case 'AddV2':
    case 'Sub':
    case 'Mul':
    case 'RealDiv': {
      const op = n.op === 'RealDiv' ? 'Div' : n.op === 'AddV2' ? 'Add' : n.op;
      const c0 = isConst(nodes, n.input[0] ?? '');
      const c1 = isConst(nodes, n.input[1] ?? '');
      if (c0 && c1) e.fail(where, 'both inputs are constants');
      if (c0) return e.binaryConst(op as 'Add', tensor(1), floatConst(0), n.name, true);
      if (c1) return e.binaryConst(op as 'Add', tensor(0), floatConst(1), n.name);
      return e.binary(op as 'Add', tensor(0), tensor(1), n.name);
    }
    case 'Relu':
      return e.activation(tensor(0), { kind: 'relu' }, n.name);
    case 'Relu6':
      return e.activation(tensor(0), { kind: 'relu6' }, n.name);
    case 'LeakyRelu':
      return e.activation(tensor(0), { kind: 'leaky', alpha: float('alpha', 0.2) }, n.name);
    case 'Sigmoid':
      return e.activation(tensor(0), { kind: 'sigmoid' }, n.name);
    case 'Tanh':
      return e.activation(tensor(0), { kind: 'tanh' }, n.name);
    case 'Softmax':
      return e.activation(tensor(0), { kind: 'softmax' }, n.name);
    case 'AvgPool':
    case 'MaxPool': {
      checkNhwc();
      return e.pool(
        tensor(0),
        n.op === 'AvgPool' ? 'avg' : 'max',
        spatial('ksize'),
        spatial('strides'),
        padding(),
        n.name,
      );
    }
    case 'Mean': {
      const x = tensor(0);
      const axes = [...constant(1).data]
        .map((d) => (d < 0 ? d + x.shape.length + 1 : d))
        .sort((p, q) => p - q);
      if (x.shape.length !== 3 || axes.join() !== '1,2')
        e.fail(
          where,
          `only the mean over height and width of an image is supported, got axes [${axes}]`,
        );
      return e.globalPool(x, 'avg', bool('keep_dims'), n.name);
    }
    case 'Squeeze': {
      const x = tensor(0);
      const dims = (ints('squeeze_dims') ?? ints('axis') ?? []).map((d) =>
        d < 0 ? d + x.shape.length + 1 : d,
      );
      const drop =
        dims.length > 0 ? dims.map((d) => d - 1) : x.shape.flatMap((d, i) => (d === 1 ? [i] : []));
      if (drop.some((d) => d < 0 || x.shape[d] !== 1))
        e.fail(where, `cannot squeeze dimensions [${dims}] of [N, ${x.shape}]`);
      const shape = x.shape.filter((_, i) => !drop.includes(i));
      return shape.length === x.shape.length ? x : e.reshape(x, shape, n.name);
    }
    case 'Reshape': {
      const x = tensor(0);
      const spec = [...constant(1).data];
      if (spec.length < 2 || (spec[0] !== -1 && spec[0] !== 1))
        e.fail(where, `shape [${spec}] must keep the batch dimension first (-1)`);
      const shape = spec.slice(1);
      const unknown = shape.indexOf(-1);
      if (unknown >= 0)
        shape[unknown] = product(x.shape) / product(shape.filter((_, i) => i !== unknown));
      return e.reshape(x, shape, n.name);
    }
    case 'Pad':
    case 'PadV2': {
      const x = tensor(0);
      const p = [...constant(1).data];
      if (x.shape.length !== 3 || p.length !== 8 || p[0] || p[1] || p[6] || p[7])
        e.fail(where, `paddings [${p}] must pad only height and width of an image`);
      const value = n.op === 'PadV2' ? (floatConst(2).data[0] ?? 0) : 0;
      return e.pad(
        x,
        [
          [p[2] as number, p[3] as number],
          [p[4] as number, p[5] as number],
        ],
        n.name,
        value,
      );
    }
    case 'ConcatV2': {
      const count = n.input.length - 1;
      const axis = constant(count).data[0] as number;
      const xs = Array.from({ length: count }, (_, i) => tensor(i));
      return e.concat(xs, axis < 0 ? axis : axis - 1, n.name);
    }
    case 'FusedBatchNorm':
    case 'FusedBatchNormV3': {
      checkNhwc();
      if (bool('is_training')) e.fail(where, 'is_training = true is not supported');
      const [scale, offset, mean, variance] = [1, 2, 3, 4].map(floatConst) as [
        ReturnType<typeof floatConst>,
        ReturnType<typeof floatConst>,
        ReturnType<typeof floatConst>,
        ReturnType<typeof floatConst>,
      ];
      return e.batchNorm(tensor(0), n.name, {
        gamma: scale,
        beta: offset,
        mean,
        variance,
        epsilon: float('epsilon', 1e-3),
      });
    }
    default:
      return e.fail(where, 'op not supported');
  }
}
