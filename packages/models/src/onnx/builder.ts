/**
 * A small builder for ONNX graphs: nodes, float32/int64 initializers, typed
 * inputs and outputs. The exporter writes models with it, and tests build
 * hand-made graphs with it.
 */
import {
  DT,
  floatTensorProto,
  type IAttributeProto,
  type IModelProto,
  type INodeProto,
  type ITensorProto,
  type IValueInfoProto,
  int64TensorProto,
  onnx,
} from './proto.js';

/** An attribute value with its ONNX type made explicit (1 and 1.0 differ in ONNX). */
export type OnnxAttr =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'ints'; value: readonly number[] }
  | { type: 'floats'; value: readonly number[] }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: ITensorProto };

export const attr = {
  int: (value: number): OnnxAttr => ({ type: 'int', value }),
  float: (value: number): OnnxAttr => ({ type: 'float', value }),
  ints: (value: readonly number[]): OnnxAttr => ({ type: 'ints', value }),
  floats: (value: readonly number[]): OnnxAttr => ({ type: 'floats', value }),
  string: (value: string): OnnxAttr => ({ type: 'string', value }),
  /** A float32 tensor attribute (e.g. Constant's `value`). */
  floatTensor: (data: readonly number[] | Float32Array, dims: readonly number[]): OnnxAttr => ({
    type: 'tensor',
    value: floatTensorProto('', data, dims),
  }),
  /** An int64 tensor attribute (e.g. a Constant shape). */
  int64Tensor: (data: readonly number[], dims: readonly number[]): OnnxAttr => ({
    type: 'tensor',
    value: int64TensorProto('', data, dims),
  }),
};

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

function valueInfo(name: string, dims: readonly OnnxDim[], elemType: number): IValueInfoProto {
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

/** IR version matching an opset (capped at 8, the newest the onnx-proto schema knows). */
export function irVersionForOpset(opset: number): number {
  if (opset <= 8) return 3;
  if (opset <= 10) return 5;
  if (opset <= 11) return 6;
  if (opset <= 14) return 7;
  return 8;
}

export class OnnxGraphBuilder {
  private readonly nodes: INodeProto[] = [];
  private readonly initializers: ITensorProto[] = [];
  private readonly inputs: IValueInfoProto[] = [];
  private readonly outputs: IValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(readonly name = 'graph') {}

  /** True if a value (input, initializer or node output) of this name exists. */
  has(name: string): boolean {
    return this.names.has(name);
  }

  private claim(name: string, what: string): void {
    if (this.names.has(name)) throw new Error(`OnnxGraphBuilder: ${what} "${name}" already exists`);
    this.names.add(name);
  }

  input(name: string, dims: readonly OnnxDim[], elemType: number = DT.FLOAT): string {
    this.claim(name, 'value');
    this.inputs.push(valueInfo(name, dims, elemType));
    return name;
  }

  /** Mark an existing value as a graph output. */
  output(name: string, dims: readonly OnnxDim[], elemType: number = DT.FLOAT): string {
    if (!this.names.has(name)) throw new Error(`OnnxGraphBuilder: no value "${name}" to output`);
    this.outputs.push(valueInfo(name, dims, elemType));
    return name;
  }

  initializer(
    name: string,
    data: Float32Array | readonly number[],
    dims: readonly number[],
  ): string {
    this.claim(name, 'value');
    this.initializers.push(floatTensorProto(name, data, dims));
    return name;
  }

  int64Initializer(name: string, data: readonly number[], dims: readonly number[]): string {
    this.claim(name, 'value');
    this.initializers.push(int64TensorProto(name, data, dims));
    return name;
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
      if (i !== '' && !this.names.has(i))
        throw new Error(`OnnxGraphBuilder: ${opType} input "${i}" is not defined yet`);
    }
    const id = this.counter++;
    const outs =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, (_, k) => `${opType.toLowerCase()}_${id}_${k}`)
        : [...outputs];
    for (const o of outs) this.claim(o, 'value');
    this.nodes.push({
      opType,
      name: name ?? `${opType}_${id}`,
      input: [...inputs],
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => encodeAttr(k, v)),
    });
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
    return {
      irVersion: opts.irVersion ?? irVersionForOpset(opset),
      producerName: opts.producerName ?? 'transferlab',
      opsetImport: [{ domain: '', version: opset }],
      docString: opts.docString ?? '',
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
  }

  toBytes(opts: Parameters<OnnxGraphBuilder['toModel']>[0] = {}): Uint8Array {
    const model = onnx.ModelProto.create(this.toModel(opts));
    return onnx.ModelProto.encode(model).finish();
  }
}
