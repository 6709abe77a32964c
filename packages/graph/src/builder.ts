/**
 * A builder for ONNX graphs: nodes with typed attributes, float32/int64
 * initializers, typed inputs and outputs — and the shape and element type of
 * every value, inferred node by node from the op table (`ops/`). The shapes
 * are what the autodiff needs (which axes a broadcast gradient sums over);
 * a dimension may be symbolic ("N", the batch).
 *
 * The exporter writes models with it, the autodiff appends gradient nodes to
 * it, and tests build hand-made graphs with it.
 */

import type { OnnxAttr } from './attr.js';
import { OP_RULES } from './ops/index.js';
import {
  DT,
  floatTensorProto,
  type IAttributeProto,
  type IModelProto,
  type ITensorProto,
  type IValueInfoProto,
  int64TensorProto,
  onnx,
} from './proto.js';

export { attr, type OnnxAttr } from './attr.js';

const AttrType = onnx.AttributeProto.AttributeType;

function encodeAttr(name: string, a: OnnxAttr): IAttributeProto {
  switch (a.type) {
    case 'int':
      return { name, type: AttrType.INT, i: a.value };
    case 'float':
      return { name, type: AttrType.FLOAT, f: a.value };
    case 'ints':
      return { name, type: AttrType.INTS, ints: [...a.value] };
    case 'floats':
      return { name, type: AttrType.FLOATS, floats: [...a.value] };
    case 'string':
      return { name, type: AttrType.STRING, s: new TextEncoder().encode(a.value) };
    case 'tensor':
      return { name, type: AttrType.TENSOR, t: a.value };
  }
}

/** A dimension: a fixed size, or a symbolic name such as "N" for the batch. */
export type OnnxDim = number | string;
export type Shape = readonly OnnxDim[];

/** What the builder knows of a value: its element type and, when inferred, its shape. */
export interface ValueInfo {
  elemType: number;
  dims?: Shape;
}

/** A node as the builder keeps it: attributes typed, not yet encoded. */
export interface GraphNode {
  readonly opType: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, OnnxAttr>>;
}

/**
 * Shape inference for one node: the element type and dims of each output,
 * from the inputs' (as the builder knows them). Registered by the op table;
 * the builder leaves outputs of ops without one untyped.
 */
export type ShapeInference = (node: GraphNode, g: OnnxGraphBuilder) => ValueInfo[];

function valueInfoProto(name: string, dims: Shape, elemType: number): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: {
          dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

/** The IR version ONNX released with an opset (ONNX's versioning table: opset 18 → IR 8, 19–20 → 9, 21 → 10). */
export function irVersionForOpset(opset: number): number {
  if (opset <= 8) return 3;
  if (opset <= 10) return 5;
  if (opset <= 11) return 6;
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

/**
 * Ops of the table that live outside the default ONNX domain: onnxruntime's
 * contrib ops (the training engine runs on onnxruntime). A graph that uses
 * one imports its domain.
 */
export const OP_DOMAINS: Readonly<Record<string, string>> = { Inverse: 'com.microsoft' };

export class OnnxGraphBuilder {
  readonly nodes: GraphNode[] = [];
  private readonly initializers: ITensorProto[] = [];
  private readonly inputs: IValueInfoProto[] = [];
  private readonly outputs: IValueInfoProto[] = [];
  private readonly values = new Map<string, ValueInfo>();
  /** Values of int64 initializers and constants (shapes, axes), for inference. */
  private readonly constants = new Map<string, readonly number[]>();
  private counter = 0;
  /** Values whose gradient the autodiff does not propagate (stop-gradient). */
  private readonly stopped = new Set<string>();

  constructor(readonly name = 'graph') {}

  /** True if a value (input, initializer or node output) of this name exists. */
  has(name: string): boolean {
    return this.values.has(name);
  }

  /** What is known of a value, or a clear error if there is no such value. */
  info(name: string): ValueInfo {
    const v = this.values.get(name);
    if (!v) throw new Error(`OnnxGraphBuilder: no value "${name}"`);
    return v;
  }

  /** The dims of a value, when inferred. */
  dims(name: string): Shape | undefined {
    return this.values.get(name)?.dims;
  }

  /** Record dims the op table cannot infer but the caller knows (a Reshape to a runtime `Shape`). */
  setDims(name: string, dims: Shape): void {
    this.info(name).dims = [...dims];
  }

  /** The values of an int64 initializer or constant, when it is one. */
  constant(name: string): readonly number[] | undefined {
    return this.constants.get(name);
  }

  /** Names of the graph's inputs (in order). */
  inputNames(): string[] {
    return this.inputs.map((i) => i.name ?? '');
  }

  outputNames(): string[] {
    return this.outputs.map((o) => o.name ?? '');
  }

  private claim(name: string, what: string, info: ValueInfo): void {
    if (this.values.has(name))
      throw new Error(`OnnxGraphBuilder: ${what} "${name}" already exists`);
    this.values.set(name, info);
  }

  /** A fresh value name with a readable stem, not used yet. */
  fresh(stem: string): string {
    let name: string;
    do name = `${stem}_${this.counter++}`;
    while (this.values.has(name));
    return name;
  }

  input(name: string, dims: Shape, elemType: number = DT.FLOAT): string {
    this.claim(name, 'value', { elemType, dims: [...dims] });
    this.inputs.push(valueInfoProto(name, dims, elemType));
    return name;
  }

  /** Mark an existing value as a graph output (dims default to the inferred ones). */
  output(name: string, dims?: Shape, elemType?: number): string {
    const info = this.values.get(name);
    if (!info) throw new Error(`OnnxGraphBuilder: no value "${name}" to output`);
    const d = dims ?? info.dims;
    if (!d) throw new Error(`OnnxGraphBuilder: output "${name}" has no known shape; give its dims`);
    this.outputs.push(valueInfoProto(name, d, elemType ?? info.elemType));
    return name;
  }

  initializer(
    name: string,
    data: Float32Array | readonly number[],
    dims: readonly number[],
  ): string {
    this.claim(name, 'value', { elemType: DT.FLOAT, dims: [...dims] });
    this.initializers.push(floatTensorProto(name, data, dims));
    return name;
  }

  int64Initializer(name: string, data: readonly number[], dims: readonly number[]): string {
    this.claim(name, 'value', { elemType: DT.INT64, dims: [...dims] });
    this.initializers.push(int64TensorProto(name, data, dims));
    this.constants.set(name, [...data]);
    return name;
  }

  /**
   * The same value with no gradient flowing back through it (an Identity the
   * autodiff treats as a constant): a loss that trains a head on features
   * without training the features.
   */
  stopGradient(x: string): string {
    const out = this.op('Identity', [x]);
    this.stopped.add(out);
    return out;
  }

  /** Whether `name` is the output of `stopGradient`. */
  isStopped(name: string): boolean {
    return this.stopped.has(name);
  }

  /** A float32 scalar or small constant under a fresh name. */
  scalar(value: number, stem = 'const'): string {
    return this.initializer(this.fresh(stem), [value], []);
  }

  /** An int64 1-D constant under a fresh name (axes, shapes). */
  ints(values: readonly number[], stem = 'ints'): string {
    return this.int64Initializer(this.fresh(stem), values, [values.length]);
  }

  /**
   * Add a node. Outputs may be given as names, or as a number of outputs to
   * name automatically. Returns the output names. Empty input names ("")
   * mark omitted optional inputs, as in ONNX.
   */
  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[] | number = 1,
    attrs: Readonly<Record<string, OnnxAttr>> = {},
    name?: string,
  ): string[] {
    for (const i of inputs) {
      if (i !== '' && !this.values.has(i))
        throw new Error(`OnnxGraphBuilder: ${opType} input "${i}" is not defined yet`);
    }
    const stem = opType.toLowerCase();
    const outs =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, () => this.fresh(stem))
        : [...outputs];
    const node: GraphNode = {
      opType,
      name: name ?? this.fresh(opType),
      inputs: [...inputs],
      outputs: outs,
      attrs: { ...attrs },
    };
    const infer = OP_RULES[opType]?.infer;
    let infos: ValueInfo[] = [];
    // Shapes propagate only from known shapes: a value of unknown shape (an op without inference upstream) stays unknown.
    if (infer && inputs.every((i) => i === '' || this.values.get(i)?.dims)) {
      try {
        infos = infer(node, this);
      } catch (err) {
        throw new Error(`${opType} node "${node.name}": ${(err as Error).message}`);
      }
    }
    outs.forEach((o, k) => {
      if (o !== '') this.claim(o, 'value', infos[k] ?? { elemType: DT.FLOAT });
    });
    if (opType === 'Constant') {
      const t = attrs.value;
      if (t?.type === 'tensor' && t.value.dataType === DT.INT64 && t.value.rawData) {
        const raw = t.value.rawData;
        const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        const vals: number[] = [];
        for (let k = 0; k < raw.byteLength / 8; k++)
          vals.push(Number(view.getBigInt64(k * 8, true)));
        this.constants.set(outs[0] as string, vals);
      }
    }
    this.nodes.push(node);
    return outs;
  }

  /** Like `node` for the common single-output case. */
  op(
    opType: string,
    inputs: readonly string[],
    attrs: Readonly<Record<string, OnnxAttr>> = {},
    output?: string,
    name?: string,
  ): string {
    return this.node(opType, inputs, output ? [output] : 1, attrs, name)[0] as string;
  }

  toModel(
    opts: {
      opset?: number;
      irVersion?: number;
      producerName?: string;
      docString?: string;
      metadata?: Readonly<Record<string, string>>;
    } = {},
  ): IModelProto {
    const opset = opts.opset ?? 13;
    const domains = new Set(
      this.nodes.map((n) => OP_DOMAINS[n.opType]).filter((d): d is string => d !== undefined),
    );
    return {
      irVersion: opts.irVersion ?? irVersionForOpset(opset),
      producerName: opts.producerName ?? 'transferlab',
      opsetImport: [
        { domain: '', version: opset },
        ...[...domains].map((domain) => ({ domain, version: 1 })),
      ],
      docString: opts.docString ?? '',
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: this.name,
        node: this.nodes.map((n) => ({
          opType: n.opType,
          ...(OP_DOMAINS[n.opType] ? { domain: OP_DOMAINS[n.opType] } : {}),
          name: n.name,
          input: [...n.inputs],
          output: [...n.outputs],
          attribute: Object.entries(n.attrs).map(([k, v]) => encodeAttr(k, v)),
        })),
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
  }

  toBytes(opts: Parameters<OnnxGraphBuilder['toModel']>[0] = {}): Uint8Array {
    const proto = this.toModel(opts);
    // Constants no node reads (left by pruned gradient pieces) are not written.
    const read = new Set([...this.nodes.flatMap((n) => n.inputs), ...this.outputNames()]);
    if (proto.graph)
      proto.graph.initializer = this.initializers.filter((t) => read.has(t.name ?? ''));
    const model = onnx.ModelProto.create(proto);
    return onnx.ModelProto.encode(model).finish();
  }
}
