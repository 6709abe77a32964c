/**
 * The pretrained image classifiers of the npm package `nsfwjs` (MIT) as
 * transferlab backbones: MobileNetV2 (a Keras layers model, 224×224),
 * MobileNetV2Mid (a TensorFlow graph model, 224×224) and InceptionV3 (a Keras
 * layers model, 299×299), each trained on 5 classes (Drawing, Hentai,
 * Neutral, Porn, Sexy) with uint8-quantized weights.
 *
 * nsfwjs ships each model as browserify bundles: `model.min.js` exports the
 * model.json object and `group1-shardXofY.min.js` export the weight files as
 * base64 strings. This module locates them in node_modules, decodes them,
 * translates the model to ONNX (tfjs-to-onnx.ts) and imports it with
 * `importOnnx`, so the same weights run in onnxruntime (fast, frozen) and in
 * tfjs (differentiable, fine-tunable). A directory holding a plain model.json
 * and binary shards (the nsfwjs GitHub models) works too: `modelDir`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Params } from '@transferlab/core';
import { importOnnx, type OnnxBackbone } from '../onnx/import.js';
import { type TfjsOnnxModel, type TfjsOnnxValue, tfjsToOnnx } from './tfjs-to-onnx.js';
import {
  concatBytes,
  parseTfjsModelJson,
  readTfjsModel,
  type TfjsModelArtifacts,
} from './tfjs-weights.js';

export type NsfwModelName = 'MobileNetV2' | 'MobileNetV2Mid' | 'InceptionV3';

/** Class names of the 5 outputs, in order (as nsfwjs labels them). */
export const NSFW_CLASSES = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'] as const;

interface NsfwModelInfo {
  dir: string;
  shards: number;
  size: number;
  /** The global-pooled penultimate representation, before the classifier head. */
  features: string;
  /** The 5 class scores before the softmax. */
  logits: string;
  /** The 5 class probabilities (the model's output). */
  probabilities: string;
}

const MID_PREFIX =
  'StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/StatefulPartitionedCall/predict';

export const NSFW_MODELS: Readonly<Record<NsfwModelName, Readonly<NsfwModelInfo>>> = {
  MobileNetV2: {
    dir: 'mobilenet_v2',
    shards: 1,
    size: 224,
    features: 'flatten_1',
    logits: 'dense_3:linear',
    probabilities: 'dense_3',
  },
  MobileNetV2Mid: {
    dir: 'mobilenet_v2_mid',
    shards: 2,
    size: 224,
    features: `${MID_PREFIX}/feature_vector/SpatialSqueeze`,
    logits: 'StatefulPartitionedCall/sequential/dense/BiasAdd',
    probabilities: 'Identity',
  },
  InceptionV3: {
    dir: 'inception_v3',
    shards: 6,
    size: 299,
    features: 'flatten_1',
    logits: 'dense_3:linear',
    probabilities: 'dense_3',
  },
};

/** The directory of nsfwjs's bundled model files for `name`, found through node_modules. */
export function nsfwjsModelDir(name: NsfwModelName): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('nsfwjs');
  } catch (err) {
    throw new Error(
      `the npm package nsfwjs is not installed (${(err as Error).message}); it is an optional peer ` +
        'of @transferlab/models (41 MB of weights): npm install nsfwjs@^4.4.0, or pass modelDir ' +
        '(a directory with model.json and its weight files)',
    );
  }
  let dir = dirname(entry);
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (
      existsSync(pkg) &&
      (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'nsfwjs'
    )
      break;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the nsfwjs package root above ${entry}`);
    dir = up;
  }
  return join(dir, 'dist', 'models', NSFW_MODELS[name].dir);
}

/**
 * Read an nsfwjs model: from `modelDir` (model.json + binary shards) when
 * given, else from the nsfwjs package's bundled `.min.js` files.
 */
export async function readNsfwjsModel(
  name: NsfwModelName,
  opts: { modelDir?: string } = {},
): Promise<TfjsModelArtifacts> {
  if (opts.modelDir) return readTfjsModel(join(opts.modelDir, 'model.json'));
  const dir = nsfwjsModelDir(name);
  const info = NSFW_MODELS[name];
  const require = createRequire(import.meta.url);
  const source = join(dir, 'model.min.js');
  // model.min.js is a browserify bundle exporting the model.json object (a JS
  // literal, not JSON): load it as the CommonJS module it is, then drop it
  // from require's cache so the large object is not kept alive.
  let exported: unknown;
  try {
    exported = require(source) as unknown;
    delete require.cache[source];
  } catch (err) {
    throw new Error(`cannot load nsfwjs model file ${source}: ${(err as Error).message}`);
  }
  const modelJson = parseTfjsModelJson(
    (exported as { default?: unknown }).default ?? exported,
    source,
  );
  const paths = modelJson.weightsManifest.flatMap((g) => g.paths);
  if (paths.length !== info.shards)
    throw new Error(
      `${source}: expected ${info.shards} weight files, the manifest lists ${paths.length}`,
    );
  // Each shard bundle exports one base64 string literal: read it, run nothing.
  const shards = await Promise.all(
    paths.map(async (p) => {
      const file = join(dir, `${p}.min.js`);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        throw new Error(`cannot read nsfwjs weight file ${file}: ${(err as Error).message}`);
      }
      // Double-quoted pieces (the bundle's short strings have no escaped quotes).
      const literals = text.split('"').filter((piece, i) => i % 2 === 1 && isBase64(piece));
      if (literals.length !== 1)
        throw new Error(
          `${file}: expected one base64 string of weight data, found ${literals.length}`,
        );
      return new Uint8Array(Buffer.from(literals[0] as string, 'base64'));
    }),
  );
  return { source, modelJson, weightData: concatBytes(shards) };
}

/** A long base64 string (checked char by char: a regex over megabytes overflows the stack). */
function isBase64(s: string): boolean {
  if (s.length < 64 || s.length % 4 !== 0) return false;
  const body = s.replace(/={1,2}$/, '');
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    const ok =
      (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47;
    if (!ok) return false;
  }
  return true;
}

export interface NsfwPreprocessing {
  /** Height and width the model takes. */
  size: number;
  /** model input = pixel · scale + offset, pixels being RGB values in [0, 255]. */
  scale: number;
  offset: number;
  description: string;
  /**
   * What nsfwjs does to an image before the model: RGB pixels in [0, 255]
   * (`[H, W, 3]` or `[N, H, W, 3]`) → float / 255, resized bilinearly (align
   * corners) to size × size when needed → `[N, size, size, 3]`.
   */
  apply(pixels: tf.Tensor3D | tf.Tensor4D): tf.Tensor4D;
}

export function nsfwPreprocessing(size: number): NsfwPreprocessing {
  return {
    size,
    scale: 1 / 255,
    offset: 0,
    description:
      `RGB pixels / 255 (range [0, 1]), bilinear resize with aligned corners to ${size}×${size}, NHWC` +
      ' (as nsfwjs infer(); MobileNetV2Mid maps [0, 1] to [-1, 1] inside its graph)',
    apply: (pixels) =>
      tf.tidy(() => {
        let x = tf.div(tf.cast(pixels, 'float32'), 255);
        if (x.rank === 3) x = tf.expandDims(x, 0);
        const x4 = x as tf.Tensor4D;
        if (x4.shape[3] !== 3)
          throw new Error(`nsfw preprocessing: expected RGB images, got shape [${pixels.shape}]`);
        return x4.shape[1] === size && x4.shape[2] === size
          ? x4
          : tf.image.resizeBilinear(x4, [size, size], true);
      }),
  };
}

export interface LoadNsfwOptions {
  /**
   * Where to cut: 'features' (default: the global-pooled penultimate layer of
   * the convolutional network, before the classifier head — 1280 values for
   * MobileNetV2, 1792 for MobileNetV2Mid, 2048 for InceptionV3), 'logits'
   * (the 5 class scores before the softmax), 'probabilities', or any layer
   * (node) name listed in `values`.
   */
  cutAt?: 'features' | 'logits' | 'probabilities' | (string & {});
  /** Layer (node) names to expose as taps, in tfjs layout (NHWC for images). */
  taps?: readonly string[];
  /** See TfjsToOnnxOptions.foldBatchNorm (layers models). Default false. */
  foldBatchNorm?: boolean;
  /** A directory with model.json + binary shards instead of the nsfwjs package files. */
  modelDir?: string;
}

export interface NsfwBackbone {
  model: NsfwModelName;
  /** What the nsfwjs files hold: a Keras 'layers-model' or a TF 'graph-model'. */
  format: TfjsOnnxModel['format'];
  /** The translated ONNX model: input NHWC `[N, size, size, 3]`; outputs the cut, then the taps. */
  onnxBytes: Uint8Array;
  /** The ONNX model imported as a differentiable tfjs backbone. */
  backbone: OnnxBackbone;
  /** The pretrained weights (owned by the caller). */
  params: Params;
  /** `[size, size, 3]`. */
  inputShape: [number, number, number];
  /** Name of the cut value (an ONNX output and the backbone's featuresName). */
  featuresName: string;
  /** Number of pretrained (tfjs) weight values the backbone uses. */
  paramCount: number;
  /** Every translated value: possible cut points and taps, with per-example shapes. */
  values: TfjsOnnxValue[];
  classes: readonly string[];
  preprocessing: NsfwPreprocessing;
}

/** Load an nsfwjs model as a backbone cut at `cutAt`. */
export async function loadNsfwModel(
  name: NsfwModelName,
  opts: LoadNsfwOptions = {},
): Promise<NsfwBackbone> {
  const info = NSFW_MODELS[name];
  if (!info)
    throw new Error(`unknown nsfwjs model "${name}" (${Object.keys(NSFW_MODELS).join(', ')})`);
  const cut = opts.cutAt ?? 'features';
  const featuresName =
    cut === 'features' || cut === 'logits' || cut === 'probabilities'
      ? info[cut as 'features' | 'logits' | 'probabilities']
      : cut;
  const artifacts = await readNsfwjsModel(name, opts.modelDir ? { modelDir: opts.modelDir } : {});
  const taps = [...(opts.taps ?? [])].filter((t) => t !== featuresName);
  const onnx = tfjsToOnnx(artifacts, {
    outputs: [featuresName, ...taps],
    foldBatchNorm: opts.foldBatchNorm ?? false,
    graphName: `nsfwjs-${name}`,
  });
  const { backbone, params } = importOnnx(onnx.bytes, {
    source: `nsfwjs ${name} (${artifacts.source})`,
    features: featuresName,
    ...(opts.taps ? { taps } : {}),
  });
  return {
    model: name,
    format: onnx.format,
    onnxBytes: onnx.bytes,
    backbone,
    params,
    inputShape: [info.size, info.size, 3],
    featuresName,
    paramCount: onnx.weightCount,
    values: onnx.values,
    classes: NSFW_CLASSES,
    preprocessing: nsfwPreprocessing(info.size),
  };
}

/** nsfwjs's default model, MobileNetV2 (224×224×3 → 1280 features → 256 → 128 → 5 classes). */
export function loadNsfwMobileNetV2(opts: LoadNsfwOptions = {}): Promise<NsfwBackbone> {
  return loadNsfwModel('MobileNetV2', opts);
}
