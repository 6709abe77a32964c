/**
 * TensorFlow.js model files: a `model.json` (topology + weights manifest) and
 * binary weight shards. Read from disk and decoded here without tfjs, so the
 * translation to ONNX does not depend on tfjs-layers or tfjs-converter.
 *
 * Weights manifest: groups of `{paths, weights}`; the shards of all groups,
 * concatenated in manifest order, hold the weights back to back in manifest
 * order, little-endian. A weight may be stored quantized:
 * - `uint8` / `uint16` with `{min, scale}`: value = q · scale + min
 *   (rounded to an integer when the weight's dtype is int32);
 * - `float16`: IEEE half precision.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

export type TfjsDtype = 'float32' | 'int32' | 'bool' | 'string' | 'complex64';

export interface TfjsQuantization {
  dtype: 'uint8' | 'uint16' | 'float16';
  min?: number;
  scale?: number;
  original_dtype?: string;
}

export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: TfjsDtype;
  quantization?: TfjsQuantization;
}

export interface TfjsWeightGroup {
  paths: string[];
  weights: TfjsWeightSpec[];
}

/** The parsed `model.json`. `modelTopology` is a Keras model config or a TF GraphDef. */
export interface TfjsModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology: unknown;
  weightsManifest: TfjsWeightGroup[];
  signature?: unknown;
  userDefinedMetadata?: unknown;
}

export interface TfjsModelArtifacts {
  /** Where the model came from (a path), used in every error message. */
  source: string;
  modelJson: TfjsModelJson;
  /** The bytes of every weight file, in manifest order (groups, then paths), concatenated. */
  weightData: Uint8Array;
}

/** A decoded weight: float32 weights as Float32Array, int32/bool as Int32Array. */
export type TfjsWeight =
  | { name: string; shape: number[]; dtype: 'float32'; data: Float32Array }
  | { name: string; shape: number[]; dtype: 'int32' | 'bool'; data: Int32Array };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Check the shape of a parsed model.json; errors name `source`. */
export function parseTfjsModelJson(json: unknown, source: string): TfjsModelJson {
  if (!isRecord(json)) throw new Error(`${source}: model.json is not a JSON object`);
  if (!isRecord(json.modelTopology))
    throw new Error(`${source}: model.json has no modelTopology object`);
  const manifest = json.weightsManifest ?? [];
  if (!Array.isArray(manifest)) throw new Error(`${source}: weightsManifest is not an array`);
  manifest.forEach((g, i) => {
    if (!isRecord(g) || !Array.isArray(g.paths) || !Array.isArray(g.weights))
      throw new Error(`${source}: weightsManifest[${i}] needs "paths" and "weights" arrays`);
    for (const w of g.weights) {
      if (!isRecord(w) || typeof w.name !== 'string' || !Array.isArray(w.shape))
        throw new Error(
          `${source}: weightsManifest[${i}] has a weight without a name or shape: ${JSON.stringify(w)}`,
        );
    }
  });
  return { ...(json as unknown as TfjsModelJson), weightsManifest: manifest as TfjsWeightGroup[] };
}

/** Read `model.json` and the weight files it lists (paths relative to it). */
export async function readTfjsModel(modelJsonPath: string): Promise<TfjsModelArtifacts> {
  let text: string;
  try {
    text = await readFile(modelJsonPath, 'utf8');
  } catch (err) {
    throw new Error(`cannot read tfjs model ${modelJsonPath}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${modelJsonPath}: not valid JSON (${(err as Error).message})`);
  }
  const modelJson = parseTfjsModelJson(json, modelJsonPath);
  const dir = dirname(modelJsonPath);
  const parts: Uint8Array[] = [];
  for (const group of modelJson.weightsManifest) {
    for (const p of group.paths) {
      const file = resolve(dir, p);
      try {
        parts.push(await readFile(file));
      } catch (err) {
        throw new Error(
          `${modelJsonPath}: cannot read weight file ${file}: ${(err as Error).message}`,
        );
      }
    }
  }
  return { source: modelJsonPath, modelJson, weightData: concatBytes(parts) };
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** IEEE 754 half precision bits → number. */
export function float16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const STORED_BYTES: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/**
 * Decode every weight of the manifest from the concatenated weight files,
 * dequantizing quantized ones. Throws, naming `source` and the weight, on
 * unknown dtypes, missing quantization parameters, and data of the wrong size.
 */
export function decodeTfjsWeights(
  modelJson: TfjsModelJson,
  weightData: Uint8Array,
  source: string,
): Map<string, TfjsWeight> {
  const view = new DataView(weightData.buffer, weightData.byteOffset, weightData.byteLength);
  const out = new Map<string, TfjsWeight>();
  let offset = 0;
  for (const group of modelJson.weightsManifest) {
    for (const spec of group.weights) {
      const what = `${source}: weight "${spec.name}"`;
      if (out.has(spec.name)) throw new Error(`${what} appears twice in the weights manifest`);
      if (!spec.shape.every((d) => Number.isInteger(d) && d >= 0))
        throw new Error(`${what}: invalid shape [${spec.shape}]`);
      const size = spec.shape.reduce((a, b) => a * b, 1);
      const dtype = spec.dtype;
      if (dtype !== 'float32' && dtype !== 'int32' && dtype !== 'bool')
        throw new Error(`${what}: dtype ${dtype} is not supported (float32, int32, bool are)`);
      const q = spec.quantization;
      const stored = q ? q.dtype : dtype;
      const bytesPer = STORED_BYTES[stored];
      if (bytesPer === undefined)
        throw new Error(`${what}: quantization dtype ${stored} is not supported`);
      const bytes = size * bytesPer;
      if (offset + bytes > weightData.length) {
        throw new Error(
          `${what} needs bytes ${offset}..${offset + bytes} but the weight files hold only ` +
            `${weightData.length} bytes (a shard is missing or truncated)`,
        );
      }
      const read: (i: number) => number =
        stored === 'float32'
          ? (i) => view.getFloat32(offset + 4 * i, true)
          : stored === 'int32'
            ? (i) => view.getInt32(offset + 4 * i, true)
            : stored === 'uint16'
              ? (i) => view.getUint16(offset + 2 * i, true)
              : stored === 'float16'
                ? (i) => float16ToNumber(view.getUint16(offset + 2 * i, true))
                : (i) => view.getUint8(offset + i);
      let affine: ((v: number) => number) | undefined;
      if (q && (q.dtype === 'uint8' || q.dtype === 'uint16')) {
        const { min, scale } = q;
        if (typeof min !== 'number' || typeof scale !== 'number')
          throw new Error(`${what}: ${q.dtype} quantization needs numeric "min" and "scale"`);
        affine = (v) => v * scale + min;
      }
      if (dtype === 'float32') {
        const data = new Float32Array(size);
        for (let i = 0; i < size; i++) data[i] = affine ? affine(read(i)) : read(i);
        out.set(spec.name, { name: spec.name, shape: [...spec.shape], dtype, data });
      } else {
        const data = new Int32Array(size);
        for (let i = 0; i < size; i++) data[i] = Math.round(affine ? affine(read(i)) : read(i));
        out.set(spec.name, { name: spec.name, shape: [...spec.shape], dtype, data });
      }
      offset += bytes;
    }
  }
  if (offset !== weightData.length) {
    throw new Error(
      `${source}: the weight files hold ${weightData.length} bytes but the manifest describes ` +
        `${offset} (wrong or corrupt weight files?)`,
    );
  }
  return out;
}
