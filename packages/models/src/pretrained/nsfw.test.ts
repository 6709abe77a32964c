/**
 * The nsfwjs models: the original tfjs model (run by tfjs-layers /
 * tfjs-converter on wasm) against our ONNX translation run by onnxruntime,
 * and our importOnnx backbone against onnxruntime. Two random 224×224
 * images; batch 2 keeps the wasm runs to a few seconds.
 */

import * as tfc from '@tensorflow/tfjs-converter';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { countParams, createRng, disposeParams, initBackend } from '@transferlab/core';
import { loadOnnxRuntime } from '@transferlab/graph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  loadNsfwMobileNetV2,
  loadNsfwModel,
  NSFW_CLASSES,
  NSFW_MODELS,
  type NsfwModelName,
  nsfwPreprocessing,
  readNsfwjsModel,
} from './nsfw.js';
import { tfjsToOnnx } from './tfjs-to-onnx.js';
import type { TfjsModelArtifacts } from './tfjs-weights.js';

const N = 2;
let images: Float32Array;

/** Two random RGB images, preprocessed as nsfwjs does. */
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  const rng = createRng(11);
  const pixels = tf.tensor4d(
    Int32Array.from({ length: N * 224 * 224 * 3 }, () => rng.int(256)),
    [N, 224, 224, 3],
    'int32',
  );
  const x = nsfwPreprocessing(224).apply(pixels);
  images = new Float32Array(x.dataSync());
  tf.dispose([pixels, x]);
});

const measured: Record<string, number> = {};
afterAll(() => {
  console.log(`nsfwjs models, rel. max diff: ${JSON.stringify(measured)}`);
});

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
    m = Math.max(m, Math.abs(b[i] as number));
  }
  return m > 0 ? d / m : d;
}

async function ortRun(
  bytes: Uint8Array,
  size: number,
  outputs: string[],
  x: Float32Array = images,
): Promise<Float32Array[]> {
  const ort = await loadOnnxRuntime();
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 2 });
  try {
    const feed = new ort.Tensor('float32', x, [N, size, size, 3]);
    const res = await session.run({ [session.inputNames[0] as string]: feed }, outputs);
    return outputs.map((o) => new Float32Array(res[o]?.data as Float32Array));
  } finally {
    await session.release();
  }
}

/** The artifacts as tfjs's own loaders take them (tfjs decodes the quantized weights itself). */
function ioHandler(art: TfjsModelArtifacts): tf.io.IOHandler {
  const j = art.modelJson;
  return {
    load: async () => ({
      modelTopology: j.modelTopology as object,
      format: j.format,
      generatedBy: j.generatedBy,
      convertedBy: j.convertedBy ?? null,
      userDefinedMetadata: j.userDefinedMetadata as Record<string, object>,
      weightSpecs: j.weightsManifest.flatMap((g) => g.weights) as tf.io.WeightsManifestEntry[],
      weightData: art.weightData.slice().buffer,
    }),
  };
}

/** The original Keras model's outputs for `layers`, computed by tfjs-layers. */
async function layersReference(
  name: NsfwModelName,
  layers: string[],
  x: Float32Array = images,
): Promise<Float32Array[]> {
  const art = await readNsfwjsModel(name);
  const model = await tfl.loadLayersModel(ioHandler(art));
  const size = NSFW_MODELS[name].size;
  const probe = tfl.model({
    inputs: model.inputs,
    outputs: layers.map((l) => model.getLayer(l).output as tfl.SymbolicTensor),
  });
  const out = tf.tidy(() => {
    const y = probe.predict(tf.tensor(x, [N, size, size, 3]));
    return (Array.isArray(y) ? y : [y]).map((t) => new Float32Array(t.dataSync()));
  });
  model.dispose();
  return out;
}

describe('nsfwjs MobileNetV2 (Keras layers model, uint8-quantized)', () => {
  let refProbs: Float32Array;
  let refFeatures: Float32Array;
  let refTap: Float32Array;

  beforeAll(async () => {
    [refProbs, refFeatures, refTap] = (await layersReference('MobileNetV2', [
      'dense_3',
      'flatten_1',
      'block_3_expand_relu',
    ])) as [Float32Array, Float32Array, Float32Array];
  });

  it('our ONNX export in onnxruntime agrees with the original tfjs model', async () => {
    const art = await readNsfwjsModel('MobileNetV2');
    expect(art.modelJson.modelTopology).toHaveProperty('model_config.class_name', 'Model');
    const onnx = tfjsToOnnx(art);
    expect(onnx.format).toBe('layers-model');
    expect(onnx.inputShape).toEqual([224, 224, 3]);
    expect(onnx.outputs).toEqual([{ name: 'dense_3', op: 'Dense', shape: [5] }]);
    // 2,257,984 in MobileNetV2 (α = 1; 34,112 of them BN statistics) + 361,477 in the head.
    expect(onnx.weightCount).toBe(2_619_461);
    const full = tfjsToOnnx(art, { outputs: ['dense_3', 'flatten_1'] });
    const [probs, features] = await ortRun(full.bytes, 224, ['dense_3', 'flatten_1']);
    measured['MobileNetV2 probabilities, onnxruntime vs tfjs'] = relDiff(
      probs as Float32Array,
      refProbs,
    );
    measured['MobileNetV2 features, onnxruntime vs tfjs'] = relDiff(
      features as Float32Array,
      refFeatures,
    );
    expect(measured['MobileNetV2 probabilities, onnxruntime vs tfjs']).toBeLessThan(1e-4);
    expect(measured['MobileNetV2 features, onnxruntime vs tfjs']).toBeLessThan(1e-4);
    for (let i = 0; i < N; i++) {
      const p = Array.from((probs as Float32Array).subarray(5 * i, 5 * i + 5));
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
  });

  it('loadNsfwMobileNetV2: features from importOnnx agree with onnxruntime; parameter count', async () => {
    const m = await loadNsfwMobileNetV2({ taps: ['block_3_expand_relu'] });
    try {
      expect(m.model).toBe('MobileNetV2');
      expect(m.format).toBe('layers-model');
      expect(m.inputShape).toEqual([224, 224, 3]);
      expect(m.backbone.inputShape).toEqual([224, 224, 3]);
      expect(m.featuresName).toBe('flatten_1');
      expect(m.backbone.featureShape).toEqual([1280]);
      expect(m.classes).toEqual(NSFW_CLASSES);
      const params = countParams(m.params);
      console.log(
        `nsfwjs MobileNetV2 backbone: ${params} parameters ` +
          `(${m.backbone.nonTrainable.length} BN statistics tensors), ${m.onnxBytes.length} ONNX bytes`,
      );
      expect(params).toBe(2_257_984);
      expect(m.paramCount).toBe(params);
      expect(m.backbone.nonTrainable).toHaveLength(2 * 52);
      expect(m.values.find((v) => v.name === 'out_relu')).toEqual({
        name: 'out_relu',
        op: 'ReLU',
        shape: [7, 7, 1280],
      });

      const out = tf.tidy(() => {
        const o = m.backbone.apply(m.params, tf.tensor(images, [N, 224, 224, 3]), {
          taps: ['block_3_expand_relu'],
        });
        return [o.features, o.taps.block_3_expand_relu as tf.Tensor].map(
          (t) => new Float32Array(t.dataSync()),
        );
      });
      const [ortFeatures] = await ortRun(m.onnxBytes, 224, ['flatten_1']);
      measured['MobileNetV2 features, importOnnx vs onnxruntime'] = relDiff(
        out[0] as Float32Array,
        ortFeatures as Float32Array,
      );
      measured['MobileNetV2 features, importOnnx vs tfjs'] = relDiff(
        out[0] as Float32Array,
        refFeatures,
      );
      measured['MobileNetV2 tap block_3_expand_relu (NHWC), importOnnx vs tfjs'] = relDiff(
        out[1] as Float32Array,
        refTap,
      );
      expect(measured['MobileNetV2 features, importOnnx vs onnxruntime']).toBeLessThan(1e-4);
      expect(measured['MobileNetV2 features, importOnnx vs tfjs']).toBeLessThan(1e-4);
      expect(
        measured['MobileNetV2 tap block_3_expand_relu (NHWC), importOnnx vs tfjs'],
      ).toBeLessThan(1e-4);
    } finally {
      disposeParams(m.params);
    }
  });

  it('cut at the logits: softmax(importOnnx logits) = tfjs probabilities; gradients reach the first layer', async () => {
    const m = await loadNsfwMobileNetV2({ cutAt: 'logits' });
    try {
      expect(m.featuresName).toBe('dense_3:linear');
      expect(countParams(m.params)).toBe(2_619_461);
      const x = tf.tensor(images, [N, 224, 224, 3]);
      const probs = tf.tidy(
        () => new Float32Array(tf.softmax(m.backbone.apply(m.params, x).features).dataSync()),
      );
      measured['MobileNetV2 softmax(logits), importOnnx vs tfjs'] = relDiff(probs, refProbs);
      expect(measured['MobileNetV2 softmax(logits), importOnnx vs tfjs']).toBeLessThan(1e-4);

      // One example through the whole network, backwards (what fine-tuning needs).
      const x1 = tf.slice(x, [0, 0, 0, 0], [1, 224, 224, 3]);
      const names = ['Conv1/kernel', 'block_16_project_BN/gamma', 'dense_3/bias'];
      const loss = (...ws: tf.Tensor[]) => {
        const p = { ...m.params };
        names.forEach((n, i) => {
          p[n] = ws[i] as tf.Tensor;
        });
        return tf.sum(tf.square(m.backbone.apply(p, x1).features)) as tf.Scalar;
      };
      const norms = tf.tidy(() =>
        tf
          .grads(loss)(names.map((n) => m.params[n] as tf.Tensor))
          .map((g) => tf.norm(g).dataSync()[0] as number),
      );
      for (const g of norms) {
        expect(Number.isFinite(g)).toBe(true);
        expect(g).toBeGreaterThan(0);
      }
      tf.dispose([x, x1]);
    } finally {
      disposeParams(m.params);
    }
  });

  it('folding BatchNormalization into the convolutions keeps the features', async () => {
    const art = await readNsfwjsModel('MobileNetV2');
    const folded = tfjsToOnnx(art, { outputs: ['flatten_1'], foldBatchNorm: true });
    const [features] = await ortRun(folded.bytes, 224, ['flatten_1']);
    measured['MobileNetV2 features, BN folded, onnxruntime vs tfjs'] = relDiff(
      features as Float32Array,
      refFeatures,
    );
    expect(measured['MobileNetV2 features, BN folded, onnxruntime vs tfjs']).toBeLessThan(1e-4);
  });
});

describe('nsfwjs MobileNetV2Mid (TensorFlow graph model, BN folded by the converter)', () => {
  it('our ONNX export in onnxruntime agrees with the original tfjs graph model', async () => {
    const info = NSFW_MODELS.MobileNetV2Mid;
    const art = await readNsfwjsModel('MobileNetV2Mid');
    expect(art.modelJson.format).toBe('graph-model');
    const model = await tfc.loadGraphModel(ioHandler(art));
    const ref = tf.tidy(() =>
      (
        model.execute(tf.tensor(images, [N, 224, 224, 3]), [
          info.probabilities,
          info.features,
        ]) as tf.Tensor[]
      ).map((t) => new Float32Array(t.dataSync())),
    );
    model.dispose();
    const onnx = tfjsToOnnx(art, { outputs: [info.probabilities, info.features] });
    expect(onnx.format).toBe('graph-model');
    expect(onnx.outputs.map((o) => o.shape)).toEqual([[5], [1792]]);
    const [probs, features] = await ortRun(onnx.bytes, 224, [info.probabilities, info.features]);
    measured['MobileNetV2Mid probabilities, onnxruntime vs tfjs'] = relDiff(
      probs as Float32Array,
      ref[0] as Float32Array,
    );
    measured['MobileNetV2Mid features, onnxruntime vs tfjs'] = relDiff(
      features as Float32Array,
      ref[1] as Float32Array,
    );
    expect(measured['MobileNetV2Mid probabilities, onnxruntime vs tfjs']).toBeLessThan(1e-4);
    expect(measured['MobileNetV2Mid features, onnxruntime vs tfjs']).toBeLessThan(1e-4);

    const m = await loadNsfwModel('MobileNetV2Mid');
    try {
      expect(m.backbone.featureShape).toEqual([1792]);
      const ours = tf.tidy(
        () =>
          new Float32Array(
            m.backbone.apply(m.params, tf.tensor(images, [N, 224, 224, 3])).features.dataSync(),
          ),
      );
      measured['MobileNetV2Mid features, importOnnx vs onnxruntime'] = relDiff(
        ours,
        features as Float32Array,
      );
      expect(measured['MobileNetV2Mid features, importOnnx vs onnxruntime']).toBeLessThan(1e-4);
    } finally {
      disposeParams(m.params);
    }
  });
});

describe.skipIf(!process.env.TRANSFERLAB_SLOW_TESTS)('nsfwjs InceptionV3 (slow)', () => {
  it('our ONNX export in onnxruntime agrees with the original tfjs model', async () => {
    const art = await readNsfwjsModel('InceptionV3');
    const rng = createRng(5);
    const x = Float32Array.from({ length: N * 299 * 299 * 3 }, () => rng.next());
    const [refProbs, refFeatures] = await layersReference(
      'InceptionV3',
      ['dense_3', 'flatten_1'],
      x,
    );
    const onnx = tfjsToOnnx(art, { outputs: ['dense_3', 'flatten_1'] });
    expect(onnx.weightCount).toBe(22_360_869);
    const [probs, features] = await ortRun(onnx.bytes, 299, ['dense_3', 'flatten_1'], x);
    measured['InceptionV3 probabilities, onnxruntime vs tfjs'] = relDiff(
      probs as Float32Array,
      refProbs as Float32Array,
    );
    measured['InceptionV3 features, onnxruntime vs tfjs'] = relDiff(
      features as Float32Array,
      refFeatures as Float32Array,
    );
    expect(measured['InceptionV3 probabilities, onnxruntime vs tfjs']).toBeLessThan(1e-4);
    expect(measured['InceptionV3 features, onnxruntime vs tfjs']).toBeLessThan(1e-4);
  });
});

describe('nsfw preprocessing', () => {
  it('scales pixels to [0, 1] and resizes like nsfwjs', () => {
    const p = nsfwPreprocessing(224);
    expect(p.scale).toBe(1 / 255);
    expect(p.offset).toBe(0);
    const pixels = tf.tensor3d(
      Int32Array.from({ length: 30 * 20 * 3 }, (_, i) => i % 256),
      [30, 20, 3],
      'int32',
    );
    const x = p.apply(pixels);
    expect(x.shape).toEqual([1, 224, 224, 3]);
    const expected = tf.image.resizeBilinear(
      tf.div(tf.expandDims(tf.cast(pixels, 'float32'), 0), 255) as tf.Tensor4D,
      [224, 224],
      true,
    );
    expect(relDiff(x.dataSync(), expected.dataSync())).toBeLessThan(1e-6);
    // The corners are kept exactly (align corners).
    expect(x.dataSync()[0]).toBeCloseTo(0, 6);
    const same = p.apply(tf.zeros([2, 224, 224, 3]) as tf.Tensor4D);
    expect(same.shape).toEqual([2, 224, 224, 3]);
    expect(() => p.apply(tf.zeros([4, 4, 1]) as tf.Tensor3D)).toThrow(/expected RGB images/);
    tf.dispose([pixels, x, expected, same]);
  });

  it('an unknown cut point is refused with the available values', async () => {
    await expect(loadNsfwMobileNetV2({ cutAt: 'no_such_layer' })).rejects.toThrow(
      /mobilenet_v2\/model\.min\.js: no layer "no_such_layer" \(162 layers, the last ones: .*block_16_project_BN, Conv_1, Conv_1_bn, out_relu, average_pooling2d_1, flatten_1, dense_1, dropout_2, dense_2, dropout_3, dense_3\)/,
    );
  });
});
