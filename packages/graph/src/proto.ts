/**
 * Thin helpers over the `onnx-proto` protobuf classes (ONNX 1.10 schema, IR
 * version ≤ 8): decoding a model with errors that name the file, turning
 * TensorProtos into plain arrays and back, and reading attributes.
 *
 * protobufjs decodes int64 fields as `Long` objects; everything here converts
 * them to plain numbers (exact below 2^53, which covers shapes and indices).
 */
import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.ModelProto;
export type IModelProto = onnxProto.onnx.IModelProto;
export type IGraphProto = onnxProto.onnx.IGraphProto;
export type INodeProto = onnxProto.onnx.INodeProto;
export type ITensorProto = onnxProto.onnx.ITensorProto;
export type IAttributeProto = onnxProto.onnx.IAttributeProto;
export type IValueInfoProto = onnxProto.onnx.IValueInfoProto;

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

/** A protobufjs int64 (number or Long) as a JS number. */
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
    model = onnx.ModelProto.decode(bytes);
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
