/**
 * The ONNX protobuf layer: messages generated from ONNX's own `onnx.proto`
 * (v1.17.0, IR version 10; `scripts/gen-onnx-proto.sh`) with
 * `@bufbuild/protobuf`, behind plain objects: decoding a model with errors
 * that name the file, turning TensorProtos into plain arrays and back, and
 * reading attributes. Models of IR versions 3 to 10 read and write alike;
 * fields newer than the schema survive a decode/encode round trip.
 *
 * The plain form keeps the shape callers build by hand: every field
 * optional, oneof members as ordinary fields (`type.tensorType`,
 * `dim.dimValue`) and int64 as numbers (exact below 2^53, which covers
 * shapes and indices; larger values such as INT64_MAX in Slice bounds are
 * clamped to the int64 range when written).
 */
import {
  create,
  type DescField,
  type DescMessage,
  fromBinary,
  type Message,
  ScalarType,
  toBinary,
} from '@bufbuild/protobuf';
import * as pb from './gen/onnx_pb.js';

/** A generated message as a plain object: every field optional, int64 as number. */
export type PlainMessage<T> = {
  [K in keyof T as K extends '$typeName' | '$unknown' ? never : K]?: Plain<T[K]> | null;
};
/** Oneofs flattened, as protobufjs had them: `type.tensorType`, `dim.dimValue`. */
type PlainTypeProto = Omit<PlainMessage<pb.TypeProto>, 'value'> & {
  tensorType?: Plain<pb.TypeProto_Tensor> | null;
  sequenceType?: Plain<pb.TypeProto_Sequence> | null;
  mapType?: Plain<pb.TypeProto_Map> | null;
  optionalType?: Plain<pb.TypeProto_Optional> | null;
  sparseTensorType?: Plain<pb.TypeProto_SparseTensor> | null;
};
type PlainDimension = Omit<PlainMessage<pb.TensorShapeProto_Dimension>, 'value'> & {
  dimValue?: number | bigint | null;
  dimParam?: string | null;
};
type Plain<T> = T extends bigint
  ? number | bigint
  : T extends Uint8Array
    ? Uint8Array
    : T extends readonly (infer U)[]
      ? Plain<U>[]
      : T extends pb.TypeProto
        ? PlainTypeProto
        : T extends pb.TensorShapeProto_Dimension
          ? PlainDimension
          : T extends Message
            ? PlainMessage<T>
            : T;

export type IModelProto = PlainMessage<pb.ModelProto>;
export type IGraphProto = PlainMessage<pb.GraphProto>;
export type INodeProto = PlainMessage<pb.NodeProto>;
export type ITensorProto = PlainMessage<pb.TensorProto>;
export type IAttributeProto = PlainMessage<pb.AttributeProto>;
export type IValueInfoProto = PlainMessage<pb.ValueInfoProto>;
/** A decoded model: the plain form, with repeated fields always present. */
export type ModelProto = IModelProto;

const INT64 = new Set<ScalarType>([
  ScalarType.INT64,
  ScalarType.UINT64,
  ScalarType.SINT64,
  ScalarType.FIXED64,
  ScalarType.SFIXED64,
]);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function toInt64(v: unknown, scalar: ScalarType, what: string): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`${what}: ${v} is not an int64`);
    b = BigInt(Math.trunc(v));
  } else b = BigInt(toNumber(v));
  const unsigned = scalar === ScalarType.UINT64 || scalar === ScalarType.FIXED64;
  // A JS number just above INT64_MAX (2^63, what 9223372036854775807 rounds to) means "the largest".
  if (unsigned) return b < 0n ? 0n : b > UINT64_MAX ? UINT64_MAX : b;
  return b > INT64_MAX ? INT64_MAX : b < -INT64_MAX - 1n ? -INT64_MAX - 1n : b;
}

function scalarIn(field: DescField & { scalar?: ScalarType }, v: unknown, what: string): unknown {
  return field.scalar !== undefined && INT64.has(field.scalar) ? toInt64(v, field.scalar, what) : v;
}

function scalarOut(v: unknown): unknown {
  return typeof v === 'bigint' ? Number(v) : v;
}

/** A plain object (possibly partial, oneofs flattened) as a generated message. */
function fromPlain<D extends DescMessage>(desc: D, plain: object): Message {
  const src = plain as Record<string, unknown>;
  const msg = create(desc) as unknown as Record<string, unknown>;
  for (const field of desc.fields) {
    const v = src[field.localName];
    if (v === undefined || v === null) continue;
    const what = `${desc.typeName}.${field.name}`;
    let out: unknown;
    switch (field.fieldKind) {
      case 'scalar':
        out = scalarIn(field, v, what);
        break;
      case 'enum':
        out = v;
        break;
      case 'message':
        out = fromPlain(field.message, v as object);
        break;
      case 'list': {
        const items = v as readonly unknown[];
        if (field.listKind === 'message')
          out = items.map((x) => fromPlain(field.message, x as object));
        else if (field.listKind === 'scalar') out = items.map((x) => scalarIn(field, x, what));
        else out = [...items];
        break;
      }
      case 'map':
        out = { ...(v as object) };
        break;
    }
    if (field.oneof) msg[field.oneof.localName] = { case: field.localName, value: out };
    else msg[field.localName] = out;
  }
  return msg as unknown as Message;
}

/** A generated message as a plain object (oneofs flattened, int64 as numbers). */
function toPlain(desc: DescMessage, message: Message): Record<string, unknown> {
  const msg = message as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of desc.fields) {
    let v: unknown;
    if (field.oneof) {
      const o = msg[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (o?.case !== field.localName) continue;
      v = o.value;
    } else v = msg[field.localName];
    if (v === undefined) continue;
    switch (field.fieldKind) {
      case 'scalar':
        out[field.localName] = scalarOut(v);
        break;
      case 'enum':
        out[field.localName] = v;
        break;
      case 'message':
        out[field.localName] = toPlain(field.message, v as Message);
        break;
      case 'list': {
        const items = v as readonly unknown[];
        out[field.localName] =
          field.listKind === 'message'
            ? items.map((x) => toPlain(field.message, x as Message))
            : field.listKind === 'scalar'
              ? items.map(scalarOut)
              : [...items];
        break;
      }
      case 'map':
        out[field.localName] = { ...(v as object) };
        break;
    }
  }
  return out;
}

/** Encode a model (plain form) to ONNX protobuf bytes. */
export function encodeModel(model: IModelProto): Uint8Array {
  return toBinary(pb.ModelProtoSchema, fromPlain(pb.ModelProtoSchema, model) as pb.ModelProto);
}

function decodeModelBytes(bytes: Uint8Array): ModelProto {
  return toPlain(pb.ModelProtoSchema, fromBinary(pb.ModelProtoSchema, bytes)) as ModelProto;
}

/**
 * The protobuf entry points in the shape callers have used since the
 * protobufjs days (`onnx.ModelProto.encode(m).finish()`), over the
 * generated schema.
 */
export const onnx = {
  ModelProto: {
    create: (m: IModelProto): IModelProto => m,
    encode: (m: IModelProto) => ({ finish: () => encodeModel(m) }),
    decode: decodeModelBytes,
  },
  TensorProto: {
    create: (t: ITensorProto): ITensorProto => t,
    DataType: pb.TensorProto_DataType,
    DataLocation: pb.TensorProto_DataLocation,
  },
  AttributeProto: { AttributeType: pb.AttributeProto_AttributeType },
  /** IR versions by name (`IR_VERSION` is the newest this schema knows: 10). */
  Version: pb.Version,
} as const;

/** The generated schema (message descriptors and types), for callers that need the full API. */
export { pb as onnxSchema };

/** ONNX TensorProto.DataType codes used here. */
export const DT = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
} as const;

const DT_NAMES: Record<number, string> = {
  0: 'UNDEFINED',
  1: 'FLOAT',
  2: 'UINT8',
  3: 'INT8',
  4: 'UINT16',
  5: 'INT16',
  6: 'INT32',
  7: 'INT64',
  8: 'STRING',
  9: 'BOOL',
  10: 'FLOAT16',
  11: 'DOUBLE',
  12: 'UINT32',
  13: 'UINT64',
  14: 'COMPLEX64',
  15: 'COMPLEX128',
  16: 'BFLOAT16',
};

export function dataTypeName(code: number): string {
  return DT_NAMES[code] ?? `type #${code}`;
}

export function isFloatType(code: number): boolean {
  return code === DT.FLOAT || code === DT.DOUBLE || code === DT.FLOAT16;
}

/** An int64 (number, bigint, numeric string or a Long-like object) as a JS number. */
export function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v && typeof v === 'object' && 'toNumber' in v && typeof v.toNumber === 'function') {
    return (v as { toNumber(): number }).toNumber();
  }
  if (typeof v === 'string') return Number(v);
  return Number.NaN;
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  // ONNX raw data is little-endian; the typed-array views below assume the host is too.
  throw new Error('transferlab ONNX support needs a little-endian host');
}

/** Decode a model; protobuf errors become one message naming the source and the cause. */
export function decodeModel(bytes: Uint8Array, source: string): ModelProto {
  if (bytes.length === 0) throw new Error(`${source}: not a valid ONNX model: the file is empty`);
  let model: ModelProto;
  try {
    model = decodeModelBytes(bytes);
  } catch (err) {
    throw new Error(
      `${source}: not a valid ONNX model: protobuf decoding failed (${(err as Error).message}); ` +
        `the file (${bytes.length} bytes) is truncated or not an ONNX file`,
    );
  }
  if (!model.graph) {
    throw new Error(
      `${source}: not a valid ONNX model: it has no graph (truncated, or not an ONNX file?)`,
    );
  }
  return model;
}

/** The opset version of the default (ai.onnx) domain. */
export function defaultOpset(model: ModelProto, source: string): number {
  for (const o of model.opsetImport ?? []) {
    if (!o.domain || o.domain === 'ai.onnx') return toNumber(o.version);
  }
  throw new Error(`${source}: the model imports no opset for the default ONNX domain`);
}

/** A decoded tensor: float types become Float32Array, integer/bool types number[]. */
export type DecodedTensor =
  | { dataType: number; dims: number[]; kind: 'float'; data: Float32Array }
  | { dataType: number; dims: number[]; kind: 'int'; data: number[] };

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

function alignedCopy(raw: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(raw.length);
  copy.set(raw);
  return copy.buffer;
}

/**
 * Decode a TensorProto's values. `what` names the tensor in errors (e.g.
 * `model.onnx: initializer "conv1.weight"`).
 */
export function decodeTensor(t: ITensorProto, what: string): DecodedTensor {
  const dims = (t.dims ?? []).map(toNumber);
  if (dims.some((d) => !Number.isInteger(d) || d < 0))
    throw new Error(`${what}: invalid dims [${dims}]`);
  const size = dims.reduce((a, b) => a * b, 1);
  const dataType = t.dataType ?? 0;
  if (t.dataLocation === 1 || (t.externalData && t.externalData.length > 0)) {
    throw new Error(
      `${what}: stored as external data (a separate file), which is not supported; ` +
        'save the model with all tensors inside the .onnx file',
    );
  }
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  const check = (n: number) => {
    if (n !== size) {
      throw new Error(
        `${what}: has ${n} values but its shape [${dims}] needs ${size} (truncated or corrupt data)`,
      );
    }
  };
  const rawCheck = (bytesPer: number) => {
    if (raw && raw.length !== size * bytesPer) {
      throw new Error(
        `${what}: raw data is ${raw.length} bytes but shape [${dims}] of ${dataTypeName(dataType)} ` +
          `needs ${size * bytesPer} (truncated or corrupt data)`,
      );
    }
  };
  switch (dataType) {
    case DT.FLOAT: {
      if (raw) {
        rawCheck(4);
        return { dataType, dims, kind: 'float', data: new Float32Array(alignedCopy(raw)) };
      }
      const v = t.floatData ?? [];
      check(v.length);
      return { dataType, dims, kind: 'float', data: Float32Array.from(v) };
    }
    case DT.DOUBLE: {
      if (raw) {
        rawCheck(8);
        return {
          dataType,
          dims,
          kind: 'float',
          data: Float32Array.from(new Float64Array(alignedCopy(raw))),
        };
      }
      const v = t.doubleData ?? [];
      check(v.length);
      return { dataType, dims, kind: 'float', data: Float32Array.from(v) };
    }
    case DT.FLOAT16: {
      let bits: ArrayLike<number>;
      if (raw) {
        rawCheck(2);
        bits = new Uint16Array(alignedCopy(raw));
      } else {
        bits = t.int32Data ?? [];
        check(bits.length);
      }
      return { dataType, dims, kind: 'float', data: Float32Array.from(bits, halfToFloat) };
    }
    case DT.INT64:
    case DT.UINT64: {
      if (raw) {
        rawCheck(8);
        const view = new DataView(alignedCopy(raw));
        const out: number[] = [];
        for (let i = 0; i < size; i++) {
          out.push(
            Number(
              dataType === DT.INT64
                ? view.getBigInt64(i * 8, true)
                : view.getBigUint64(i * 8, true),
            ),
          );
        }
        return { dataType, dims, kind: 'int', data: out };
      }
      const v = (dataType === DT.INT64 ? t.int64Data : t.uint64Data) ?? [];
      check(v.length);
      return { dataType, dims, kind: 'int', data: v.map(toNumber) };
    }
    case DT.INT32:
    case DT.INT16:
    case DT.INT8:
    case DT.UINT16:
    case DT.UINT8:
    case DT.BOOL:
    case DT.UINT32: {
      if (raw) {
        const ctor = {
          [DT.INT32]: Int32Array,
          [DT.INT16]: Int16Array,
          [DT.INT8]: Int8Array,
          [DT.UINT16]: Uint16Array,
          [DT.UINT8]: Uint8Array,
          [DT.BOOL]: Uint8Array,
          [DT.UINT32]: Uint32Array,
        }[dataType];
        rawCheck(ctor.BYTES_PER_ELEMENT);
        return { dataType, dims, kind: 'int', data: Array.from(new ctor(alignedCopy(raw))) };
      }
      const v = (dataType === DT.UINT32 ? t.uint64Data?.map(toNumber) : t.int32Data) ?? [];
      check(v.length);
      return { dataType, dims, kind: 'int', data: [...v] };
    }
    default:
      throw new Error(`${what}: data type ${dataTypeName(dataType)} is not supported`);
  }
}

/** A float32 TensorProto with little-endian raw data. */
export function floatTensorProto(
  name: string,
  data: Float32Array | readonly number[],
  dims: readonly number[],
): ITensorProto {
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  const size = dims.reduce((a, b) => a * b, 1);
  if (f.length !== size)
    throw new Error(`tensor "${name}": ${f.length} values for shape [${dims}] (${size})`);
  return {
    name,
    dataType: DT.FLOAT,
    dims: [...dims],
    rawData: new Uint8Array(f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength)),
  };
}

/** An int64 TensorProto with little-endian raw data. */
export function int64TensorProto(
  name: string,
  data: readonly number[],
  dims: readonly number[],
): ITensorProto {
  const size = dims.reduce((a, b) => a * b, 1);
  if (data.length !== size)
    throw new Error(`tensor "${name}": ${data.length} values for shape [${dims}] (${size})`);
  const view = new DataView(new ArrayBuffer(data.length * 8));
  data.forEach((v, i) => {
    if (!Number.isInteger(v)) throw new Error(`tensor "${name}": ${v} is not an integer`);
    view.setBigInt64(i * 8, BigInt(v), true);
  });
  return { name, dataType: DT.INT64, dims: [...dims], rawData: new Uint8Array(view.buffer) };
}

/** Dims of a graph input/output: numbers when fixed, the symbolic name (or undefined) otherwise. */
export function valueInfoDims(v: IValueInfoProto): (number | string | undefined)[] | undefined {
  const shape = v.type?.tensorType?.shape;
  if (!shape) return undefined;
  return (shape.dim ?? []).map((d) => {
    const v = d.dimValue == null ? 0 : toNumber(d.dimValue);
    return v > 0 ? v : d.dimParam || undefined;
  });
}

export function valueInfoElemType(v: IValueInfoProto): number | undefined {
  return v.type?.tensorType?.elemType ?? undefined;
}

/** Graph inputs that are real inputs (not initializers listed as inputs, as IR < 4 did). */
export function realInputs(graph: IGraphProto): IValueInfoProto[] {
  const inits = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  return (graph.input ?? []).filter((i) => !inits.has(i.name ?? ''));
}
