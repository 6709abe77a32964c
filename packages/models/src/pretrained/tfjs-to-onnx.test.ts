import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { createRng, disposeParams, initBackend } from '@transferlab/core';
import { loadOnnxRuntime } from '@transferlab/graph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importOnnx } from '../onnx/import.js';
import { samePadding } from './onnx-emitter.js';
import { tfjsToOnnx } from './tfjs-to-onnx.js';
import {
  decodeTfjsWeights,
  float16ToNumber,
  readTfjsModel,
  type TfjsModelArtifacts,
  type TfjsWeightSpec,
} from './tfjs-weights.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const measured: Record<string, number> = {};
afterAll(() => {
  console.log(`tfjs-to-onnx on tfjs-layers models, rel. max diff: ${JSON.stringify(measured)}`);
});

/** max |a − b| / max |b| */
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

/** Save a tfjs-layers model the way the converter would: model.json fields + one weight buffer. */
async function artifactsOf(model: tfl.LayersModel, source: string): Promise<TfjsModelArtifacts> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save({
    save: async (a) => {
      saved = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    },
  });
  if (!saved?.weightSpecs || !saved.weightData) throw new Error('nothing saved');
  const data = saved.weightData;
  return {
    source,
    modelJson: {
      format: 'layers-model',
      modelTopology: saved.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: saved.weightSpecs as TfjsWeightSpec[] }],
    },
    weightData: new Uint8Array(
      data instanceof ArrayBuffer ? data : tf.io.concatenateArrayBuffers(data),
    ),
  };
}

/** Give every weight random values (so BN statistics and biases are not trivial). */
function randomizeWeights(model: tfl.LayersModel, seed: number): void {
  const rng = createRng(seed);
  for (const layer of model.layers) {
    const ws = layer.getWeights();
    if (ws.length === 0) continue;
    layer.setWeights(
      ws.map((w, i) => {
        const variance = /variance/.test(layer.weights[i]?.name ?? '');
        const v = rng.normalArray(w.size, 0.3);
        return tf.tensor(variance ? v.map((x) => 0.5 + Math.abs(x)) : v, w.shape);
      }),
    );
  }
}

async function ortRun(
  bytes: Uint8Array,
  x: Float32Array,
  shape: number[],
  outputs: string[],
): Promise<Float32Array[]> {
  const ort = await loadOnnxRuntime();
  const session = await ort.InferenceSession.create(bytes);
  try {
    const input = session.inputNames[0] as string;
    const res = await session.run({ [input]: new ort.Tensor('float32', x, shape) }, outputs);
    return outputs.map((o) => res[o]?.data as Float32Array);
  } finally {
    await session.release();
  }
}

/** A functional model exercising every supported Keras layer on odd image sizes. */
function functionalModel(): tfl.LayersModel {
  const inp = tfl.input({ shape: [13, 11, 3], name: 'img' });
  const zp = tfl.layers
    .zeroPadding2d({
      padding: [
        [1, 0],
        [0, 2],
      ],
      name: 'zp',
    })
    .apply(inp) as tfl.SymbolicTensor;
  const c1 = tfl.layers
    .conv2d({
      filters: 8,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      activation: 'relu',
      name: 'c1',
    })
    .apply(zp) as tfl.SymbolicTensor;
  const bn = tfl.layers.batchNormalization({ name: 'bn' }).apply(c1) as tfl.SymbolicTensor;
  const dw = tfl.layers
    .depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', name: 'dw' })
    .apply(bn) as tfl.SymbolicTensor;
  const r6 = tfl.layers.reLU({ maxValue: 6, name: 'r6' }).apply(dw) as tfl.SymbolicTensor;
  const sep = tfl.layers
    .separableConv2d({ filters: 12, kernelSize: 3, activation: 'tanh', name: 'sep' })
    .apply(r6) as tfl.SymbolicTensor;
  const mp = tfl.layers
    .maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'mp' })
    .apply(bn) as tfl.SymbolicTensor;
  const ap = tfl.layers
    .averagePooling2d({ poolSize: 2, strides: 1, padding: 'valid', name: 'ap' })
    .apply(sep) as tfl.SymbolicTensor;
  const cat = tfl.layers.concatenate({ name: 'cat' }).apply([mp, ap]) as tfl.SymbolicTensor;
  const lk = tfl.layers.leakyReLU({ alpha: 0.1, name: 'lk' }).apply(cat) as tfl.SymbolicTensor;
  const c2 = tfl.layers
    .conv2d({ filters: 20, kernelSize: 1, useBias: false, name: 'c2' })
    .apply(lk) as tfl.SymbolicTensor;
  const bn2 = tfl.layers
    .batchNormalization({ scale: false, name: 'bn2' })
    .apply(c2) as tfl.SymbolicTensor;
  const add = tfl.layers.add({ name: 'add' }).apply([bn2, lk]) as tfl.SymbolicTensor;
  const sig = tfl.layers.activation({ activation: 'sigmoid', name: 'sig' }).apply(add);
  const mul = tfl.layers.multiply({ name: 'mul' }).apply([add, sig as tfl.SymbolicTensor]);
  const flat = tfl.layers.flatten({ name: 'flat' }).apply(mul) as tfl.SymbolicTensor;
  const drop = tfl.layers.dropout({ rate: 0.5, name: 'drop' }).apply(flat) as tfl.SymbolicTensor;
  const probs = tfl.layers
    .dense({ units: 7, activation: 'softmax', name: 'probs' })
    .apply(drop) as tfl.SymbolicTensor;
  const rs = tfl.layers
    .reshape({ targetShape: [8, 2, 20], name: 'rs' })
    .apply(mul) as tfl.SymbolicTensor;
  const gmp = tfl.layers.globalMaxPooling2d({ name: 'gmp' }).apply(rs) as tfl.SymbolicTensor;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(mul) as tfl.SymbolicTensor;
  const both = tfl.layers.concatenate({ name: 'both' }).apply([gmp, gap]) as tfl.SymbolicTensor;
  const bnv = tfl.layers.batchNormalization({ name: 'bnv' }).apply(both) as tfl.SymbolicTensor;
  const head = tfl.layers
    .dense({ units: 5, activation: 'relu', name: 'head' })
    .apply(bnv) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: inp, outputs: [probs, head], name: 'mixed' });
  randomizeWeights(model, 1);
  return model;
}

describe('tfjsToOnnx on Keras layers models', () => {
  it('translates a functional model: onnxruntime and importOnnx agree with tfjs-layers', async () => {
    const model = functionalModel();
    const art = await artifactsOf(model, 'mixed/model.json');
    const outputs = ['probs', 'head', 'probs:linear', 'cat', 'flat'];
    const onnx = tfjsToOnnx(art, { outputs });
    expect(onnx.format).toBe('layers-model');
    expect(onnx.inputShape).toEqual([13, 11, 3]);
    expect(onnx.outputs.map((o) => [o.name, o.shape])).toEqual([
      ['probs', [7]],
      ['head', [5]],
      ['probs:linear', [7]],
      ['cat', [4, 4, 20]],
      ['flat', [320]],
    ]);
    expect(onnx.weightCount).toBe(model.countParams());

    const n = 3;
    const x = createRng(2).normalArray(n * 13 * 11 * 3);
    const probe = tfl.model({
      inputs: model.inputs,
      outputs: [
        ...model.outputs,
        model.getLayer('cat').output as tfl.SymbolicTensor,
        model.getLayer('flat').output as tfl.SymbolicTensor,
      ],
    });
    const ref = tf.tidy(() =>
      (probe.predict(tf.tensor(x, [n, 13, 11, 3])) as tf.Tensor[]).map((t) => t.dataSync()),
    );
    const theirs = await ortRun(onnx.bytes, x, [n, 13, 11, 3], ['probs', 'head', 'cat', 'flat']);
    ['probs', 'head', 'cat', 'flat'].forEach((name, i) => {
      const d = relDiff(theirs[i] as Float32Array, ref[i] as Float32Array);
      measured[`ort ${name}`] = d;
      expect(d, name).toBeLessThan(1e-5);
    });

    const { backbone, params } = importOnnx(onnx.bytes, { features: 'probs', taps: ['cat'] });
    try {
      const out = tf.tidy(() => {
        const o = backbone.apply(params, tf.tensor(x, [n, 13, 11, 3]), { taps: ['cat'] });
        return [o.features.dataSync(), (o.taps.cat as tf.Tensor).dataSync()];
      });
      measured['importOnnx probs'] = relDiff(out[0] as Float32Array, ref[0] as Float32Array);
      measured['importOnnx cat'] = relDiff(out[1] as Float32Array, ref[2] as Float32Array);
      expect(measured['importOnnx probs']).toBeLessThan(1e-5);
      expect(measured['importOnnx cat']).toBeLessThan(1e-5);
      // BN running statistics are marked as not to be trained.
      expect([...backbone.nonTrainable].sort()).toEqual([
        'bn/moving_mean',
        'bn/moving_variance',
        'bn2/moving_mean',
        'bn2/moving_variance',
      ]);
    } finally {
      disposeParams(params);
    }

    // Folding BN into the convolutions changes nothing but the parameterization.
    const folded = tfjsToOnnx(art, { outputs: ['probs'], foldBatchNorm: true });
    const [pf] = await ortRun(folded.bytes, x, [n, 13, 11, 3], ['probs']);
    measured['ort probs, BN folded'] = relDiff(pf as Float32Array, ref[0] as Float32Array);
    expect(measured['ort probs, BN folded']).toBeLessThan(1e-5);
    model.dispose();
  });

  it('translates a Sequential model; models on disk (model.json + shards) read back', async () => {
    const model = tfl.sequential({
      name: 'seq',
      layers: [
        tfl.layers.conv2d({
          inputShape: [9, 9, 2],
          filters: 4,
          kernelSize: [3, 2],
          dilationRate: 2,
          activation: 'relu6',
          name: 's1',
        }),
        tfl.layers.flatten({ name: 's2' }),
        tfl.layers.dense({ units: 3, name: 's3' }),
      ],
    });
    randomizeWeights(model, 3);
    const art = await artifactsOf(model, 'seq');
    // Write model.json with the weights split over two shard files.
    const dir = await mkdtemp(join(tmpdir(), 'tfjs-model-'));
    try {
      const cut = 100;
      await writeFile(join(dir, 'a.bin'), art.weightData.subarray(0, cut));
      await writeFile(join(dir, 'b.bin'), art.weightData.subarray(cut));
      await writeFile(
        join(dir, 'model.json'),
        JSON.stringify({
          ...art.modelJson,
          weightsManifest: [
            { paths: ['a.bin', 'b.bin'], weights: art.modelJson.weightsManifest[0]?.weights },
          ],
        }),
      );
      const read = await readTfjsModel(join(dir, 'model.json'));
      expect(read.weightData).toEqual(art.weightData);
      const onnx = tfjsToOnnx(read);
      expect(onnx.outputs.map((o) => o.name)).toEqual(['s3']);
      const x = createRng(4).normalArray(2 * 9 * 9 * 2);
      const ref = tf.tidy(() =>
        (model.predict(tf.tensor(x, [2, 9, 9, 2])) as tf.Tensor).dataSync(),
      );
      const [ours] = await ortRun(onnx.bytes, x, [2, 9, 9, 2], ['s3']);
      measured['ort sequential'] = relDiff(ours as Float32Array, ref);
      expect(measured['ort sequential']).toBeLessThan(1e-5);
      await writeFile(join(dir, 'b.bin'), art.weightData.subarray(cut, cut + 8));
      await expect(readTfjsModel(join(dir, 'model.json'))).resolves.toBeDefined();
      const truncated = await readTfjsModel(join(dir, 'model.json'));
      expect(() => tfjsToOnnx(truncated)).toThrow(
        /model\.json: weight "s\d\/\w+" needs bytes \d+\.\.\d+ but the weight files hold only 108 bytes/,
      );
      await expect(readTfjsModel(join(dir, 'missing.json'))).rejects.toThrow(
        /cannot read tfjs model .*missing\.json/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
      model.dispose();
    }
  });

  it('lists every unsupported layer, and cutting before them works', async () => {
    const inp = tfl.input({ shape: [4, 4, 2], name: 'in' });
    const c = tfl.layers.conv2d({ filters: 2, kernelSize: 1, name: 'ok' }).apply(inp);
    const up = tfl.layers.upSampling2d({ size: [2, 2], name: 'up' }).apply(c);
    const tr = tfl.layers
      .conv2dTranspose({ filters: 2, kernelSize: 2, name: 'tr' })
      .apply(up) as tfl.SymbolicTensor;
    const up2 = tfl.layers.upSampling2d({ size: [2, 2], name: 'up2' }).apply(tr);
    const model = tfl.model({ inputs: inp, outputs: up2 as tfl.SymbolicTensor });
    const art = await artifactsOf(model, 'unsupported.json');
    expect(() => tfjsToOnnx(art)).toThrow(
      /^unsupported\.json: unsupported Keras layers: UpSampling2D \("up" and 1 more\); Conv2DTranspose \("tr"\)\. Supported: Activation, /,
    );
    expect(tfjsToOnnx(art, { outputs: ['ok'] }).outputs[0]?.shape).toEqual([4, 4, 2]);
    expect(() => tfjsToOnnx(art, { outputs: ['nope'] })).toThrow(
      /unsupported\.json: no layer "nope" \(5 layers, in, ok, up, tr, up2\)/,
    );
    model.dispose();
  });
});

describe('decodeTfjsWeights', () => {
  it('dequantizes uint8 / uint16 / float16 weights exactly as tfjs does', () => {
    const specs: TfjsWeightSpec[] = [
      { name: 'f32', shape: [2, 3], dtype: 'float32' },
      {
        name: 'u8',
        shape: [5],
        dtype: 'float32',
        quantization: { dtype: 'uint8', min: -1.3, scale: 0.0173 },
      },
      {
        name: 'u16',
        shape: [3],
        dtype: 'float32',
        quantization: { dtype: 'uint16', min: 0.25, scale: 1.5e-5 },
      },
      { name: 'f16', shape: [4], dtype: 'float32', quantization: { dtype: 'float16' } },
      { name: 'i32', shape: [2], dtype: 'int32' },
      {
        name: 'i8q',
        shape: [3],
        dtype: 'int32',
        quantization: { dtype: 'uint8', min: -4, scale: 1 },
      },
    ];
    const bytes = new Uint8Array(24 + 5 + 6 + 8 + 8 + 3);
    const view = new DataView(bytes.buffer);
    [0.5, -1.25, 3, 1e-3, -7, 2].forEach((v, i) => {
      view.setFloat32(4 * i, v, true);
    });
    [0, 1, 77, 200, 255].forEach((v, i) => {
      view.setUint8(24 + i, v);
    });
    [0, 4000, 65535].forEach((v, i) => {
      view.setUint16(29 + 2 * i, v, true);
    });
    [0x3c00, 0xc000, 0x0001, 0x7bff].forEach((v, i) => {
      view.setUint16(35 + 2 * i, v, true);
    });
    [7, -9].forEach((v, i) => {
      view.setInt32(43 + 4 * i, v, true);
    });
    [0, 4, 9].forEach((v, i) => {
      view.setUint8(51 + i, v);
    });
    const json = { modelTopology: {}, weightsManifest: [{ paths: ['x'], weights: specs }] };
    const ours = decodeTfjsWeights(json, bytes, 'q.json');
    const ref = tf.io.decodeWeights(bytes.slice().buffer, specs as tf.io.WeightsManifestEntry[]);
    for (const s of specs) {
      expect(Array.from(ours.get(s.name)?.data ?? []), s.name).toEqual(
        Array.from(ref[s.name]?.dataSync() ?? []),
      );
    }
    expect(float16ToNumber(0x3c00)).toBe(1);
    expect(float16ToNumber(0x7bff)).toBe(65504);
    expect(Array.from(ours.get('i8q')?.data ?? [])).toEqual([-4, 0, 5]);
    tf.dispose(Object.values(ref));

    expect(() => decodeTfjsWeights(json, bytes.subarray(0, 30), 'q.json')).toThrow(
      /q\.json: weight "u16" needs bytes 29\.\.35 but the weight files hold only 30 bytes/,
    );
    expect(() => decodeTfjsWeights(json, new Uint8Array(bytes.length + 4), 'q.json')).toThrow(
      /q\.json: the weight files hold 58 bytes but the manifest describes 54/,
    );
    const noScale = {
      modelTopology: {},
      weightsManifest: [
        {
          paths: ['x'],
          weights: [
            {
              name: 'w',
              shape: [1],
              dtype: 'float32' as const,
              quantization: { dtype: 'uint8' as const },
            },
          ],
        },
      ],
    };
    expect(() => decodeTfjsWeights(noScale, new Uint8Array(1), 'q.json')).toThrow(
      /q\.json: weight "w": uint8 quantization needs numeric "min" and "scale"/,
    );
  });

  it('computes TensorFlow same padding', () => {
    expect(samePadding(224, 3, 2)).toEqual([0, 1]);
    expect(samePadding(13, 3, 2)).toEqual([1, 1]);
    expect(samePadding(7, 3, 1, 2)).toEqual([2, 2]);
    expect(samePadding(8, 2, 2)).toEqual([0, 0]);
  });
});
