import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { disposeParams, initBackend } from '@transferlab/core';
import { loadImageFolderDataset, scanImageFolder } from '@transferlab/datasets';
import {
  builtinBackbones,
  exportBackboneToOnnx,
  linearHead,
  loadParams,
  readOnnxMetadata,
  setOnnxMetadata,
} from '@transferlab/models';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Progress } from '../progress.js';
import { augmentedEpoch, loadFitSplit, resolveFitData } from './data.js';
import { type FitResult, fitCommand, parseSetOptions } from './fit.js';
import { predictCommand } from './predict.js';
import { CLASSES_KEY, evalTransforms, PREPROCESS_KEY, trainTransforms } from './preprocess.js';
import {
  makeFolderWithEmptyClass,
  makeShapeCifarArchive,
  makeShapeFolder,
  makeTempDir,
  removeDir,
  SHAPE_CLASSES,
  type ShapeFolder,
} from './test-fixtures.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '../../../..');
const TORCH_CNN = join(here, 'fixtures/torch-cnn.onnx');

const lines: string[] = [];
const quiet: Progress = {
  trial() {},
  epoch() {},
  done: (l) => lines.push(l),
  close() {},
};

let dir: string;
let folder: ShapeFolder;
let fitted: FitResult;
let report = '';

/** Rows of a [n, k] onnxruntime output. */
async function runOrt(model: Uint8Array, input: string, x: Float32Array, shape: number[]) {
  const session = await ort.InferenceSession.create(model);
  try {
    const out = await session.run({ [input]: new ort.Tensor('float32', x, shape) });
    return {
      logits: out.logits?.data as Float32Array,
      probabilities: out.probabilities?.data as Float32Array,
    };
  } finally {
    await session.release();
  }
}

const argmax = (row: ArrayLike<number>) => {
  let best = 0;
  for (let j = 1; j < row.length; j++) if ((row[j] as number) > (row[best] as number)) best = j;
  return best;
};

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  dir = await makeTempDir();
  folder = await makeShapeFolder(join(dir, 'shapes'), { train: 48, val: 10, test: 15 });
  fitted = await fitCommand({
    data: folder.root,
    backbone: 'cnn',
    method: 'scratch',
    epochs: 15,
    out: join(dir, 'out-cnn'),
    backend: 'cpu',
    progress: quiet,
    write: (s) => {
      report += s;
    },
  });
});

afterAll(async () => {
  await removeDir(dir);
});

describe('fit on an image folder with a built-in backbone', () => {
  it('learns the shapes: test accuracy well above chance (1/3), and reports it per class', () => {
    const m = fitted.metrics;
    expect(m.target_test_acc).toBeGreaterThanOrEqual(0.6);
    expect(m.target_val_acc).toBeGreaterThanOrEqual(0.6);
    expect(m.classes).toEqual([...SHAPE_CLASSES]);
    expect(report).toContain('test accuracy');
    expect(report).toContain('| class ');
    expect(report).toContain('| true \\ predicted | circle | square | triangle |');
    // One progress line per epoch.
    expect(lines.filter((l) => /^epoch +\d+\/15/.test(l))).toHaveLength(15);
  });

  it('writes metrics.json: the confusion matrix sums to the test size, its diagonal share is the accuracy', async () => {
    const m = JSON.parse(await readFile(fitted.files.metrics, 'utf8'));
    for (const k of [
      'target_test_acc',
      'target_val_acc',
      'classes',
      'per_class_acc',
      'confusion',
      'skipped_files',
      'method',
      'backbone',
      'epochs',
    ])
      expect(m).toHaveProperty(k);
    expect(m.method).toBe('scratch');
    expect(m.backbone).toBe('cnn');
    expect(m.epochs).toBe(15);
    const confusion = m.confusion as number[][];
    const total = confusion.flat().reduce((a, b) => a + b, 0);
    // 15 test images per class, plus a truncated JPEG that is skipped.
    expect(total).toBe(45);
    expect(m.sizes.test).toBe(45);
    const diagonal = confusion.reduce((s, row, c) => s + (row[c] as number), 0);
    expect(diagonal / total).toBeCloseTo(m.target_test_acc, 12);
    for (const [c, name] of SHAPE_CLASSES.entries()) {
      const row = confusion[c] as number[];
      expect(m.per_class_acc[name]).toBeCloseTo(
        (row[c] as number) / row.reduce((a, b) => a + b, 0),
        12,
      );
    }
    const skipped = m.skipped_files as { path: string; reason: string }[];
    expect(skipped.map((s) => s.path).sort()).toEqual([folder.corrupt, folder.stray].sort());
    expect(skipped.find((s) => s.path === folder.stray)?.reason).toMatch(/not an image/);
    // libvips' message ("premature end of JPEG image") is at times lost to "Unknown error"
    // when decodes run in parallel: the file is reported either way.
    expect(skipped.find((s) => s.path === folder.corrupt)?.reason).toMatch(/\S/);
    expect(m.onnx_max_abs_diff).toBeLessThanOrEqual(1e-4);
  });

  it('model.onnx is the trained model: onnxruntime logits equal params.safetensors run in tfjs (≤ 1e-4), and its accuracy is the reported one', async () => {
    const bytes = new Uint8Array(await readFile(fitted.files.model));
    const meta = readOnnxMetadata(bytes);
    const pre = JSON.parse(meta[PREPROCESS_KEY] as string);
    expect(pre).toMatchObject({ layout: 'NHWC', height: 32, width: 32, channels: 3 });
    expect(pre.mean).toEqual([0.485, 0.456, 0.406]);
    expect(pre.std).toEqual([0.229, 0.224, 0.225]);
    expect(JSON.parse(meta[CLASSES_KEY] as string)).toEqual([...SHAPE_CLASSES]);

    // The test images, prepared as the metadata says.
    const scan = await scanImageFolder(folder.root);
    const test = await loadImageFolderDataset(scan.splits.test, {
      classes: scan.classes,
      transforms: pre.transforms,
    });
    const n = test.y.length;
    const { logits, probabilities } = await runOrt(bytes, pre.input, test.x, [n, 32, 32, 3]);

    const { params } = await loadParams(fitted.files.params);
    const backbone = (
      builtinBackbones.find((b) => b.id === 'cnn') as (typeof builtinBackbones)[number]
    ).create([32, 32, 3]);
    const head = linearHead(backbone.featureDim, 3, 'head');
    const expected = tf.tidy(() =>
      head
        .apply(params, backbone.apply(params, tf.tensor(test.x, [n, 32, 32, 3])).features)
        .dataSync(),
    );
    disposeParams(params);
    let diff = 0;
    for (let i = 0; i < expected.length; i++)
      diff = Math.max(diff, Math.abs((logits[i] as number) - (expected[i] as number)));
    expect(diff).toBeLessThanOrEqual(1e-4);

    let correct = 0;
    for (let i = 0; i < n; i++) {
      const row = probabilities.subarray(i * 3, i * 3 + 3);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      if (argmax(logits.subarray(i * 3, i * 3 + 3)) === test.y[i]) correct++;
    }
    expect(correct / n).toBeCloseTo(fitted.metrics.target_test_acc, 12);
  });

  it('--set values are YAML scalars and reach the method', () => {
    expect(
      parseSetOptions(['lr=0.003', 'optimizer=sgd', 'freezeBatchNorm=true', 'epochs=2']),
    ).toEqual({ lr: 0.003, optimizer: 'sgd', freezeBatchNorm: true, epochs: 2 });
    expect(() => parseSetOptions(['lr'])).toThrow(/key=value/);
  });
});

describe('predict', () => {
  it('prints the top classes per image, gives the final evaluation its predictions, and reports bad files without stopping', async () => {
    const images = [...folder.testImages.map((t) => t.path), folder.corrupt, folder.stray];
    let out = '';
    const { predictions, failed } = await predictCommand({
      model: fitted.files.model,
      images,
      topK: 2,
      batchSize: 16,
      write: (s) => {
        out += s;
      },
    });
    expect(failed).toBe(2);
    expect(predictions).toHaveLength(images.length);
    const printed = out.trim().split('\n');
    expect(printed).toHaveLength(images.length);
    expect(printed.at(-2)).toMatch(/broken\.jpg: ERROR not a readable image/);
    expect(printed.at(-1)).toMatch(/notes\.txt: ERROR not a readable image/);
    // Every readable image is predicted; the files after the bad ones were not dropped.
    const ok = predictions.filter((p) => p.ok);
    expect(ok).toHaveLength(folder.testImages.length);
    let correct = 0;
    for (const [i, t] of folder.testImages.entries()) {
      const p = predictions[i];
      if (!p?.ok) throw new Error(`no prediction for ${t.path}`);
      expect(p.top).toHaveLength(2);
      expect(p.top[0]?.probability).toBeGreaterThanOrEqual(p.top[1]?.probability ?? 0);
      expect(printed[i]).toContain(`${t.path}: ${p.top[0]?.class} `);
      if (p.top[0]?.index === t.label) correct++;
    }
    // The same images, model and preprocessing as fit's test evaluation: the same accuracy.
    expect(correct / folder.testImages.length).toBeCloseTo(fitted.metrics.target_test_acc, 12);
    expect(correct / folder.testImages.length).toBeGreaterThanOrEqual(0.6);
  });

  it('runs from the CLI: exit code 1 when a file is bad, one line per file', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--conditions=@transferlab/source',
        '--import',
        'tsx',
        'apps/bench/src/cli.ts',
        'predict',
        fitted.files.model,
        folder.testImages[0]?.path as string,
        folder.corrupt,
        '--top',
        '1',
      ],
      { cwd: repo, encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status).toBe(1);
    const out = r.stdout.trim().split('\n');
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(/circle-0\.png: (circle|square|triangle) \d+\.\d%$/);
    expect(out[1]).toMatch(/broken\.jpg: ERROR/);
  });
});

describe('fit from an ONNX backbone file', () => {
  it('a backbone exported with its preprocessing in the metadata: the classifier layer is cut off and a linear probe learns', async () => {
    // The CNN fit trained above, exported as a classifier (backbone + its head) with metadata.
    const { params } = await loadParams(fitted.files.params);
    const backbone = (
      builtinBackbones.find((b) => b.id === 'cnn') as (typeof builtinBackbones)[number]
    ).create([32, 32, 3]);
    const oldHead = linearHead(backbone.featureDim, 3, 'head');
    const bytes = setOnnxMetadata(
      exportBackboneToOnnx(backbone, params, { head: oldHead, outputs: ['logits'] }),
      { [PREPROCESS_KEY]: JSON.stringify({ size: 32, normalize: 'imagenet', layout: 'NHWC' }) },
    );
    disposeParams(params);
    const path = join(dir, 'pretrained-cnn.onnx');
    await writeFile(path, bytes);
    let text = '';
    const out = await fitCommand({
      data: folder.root,
      backbone: path,
      method: 'linear-probe',
      epochs: 5,
      out: join(dir, 'out-onnx'),
      backend: 'cpu',
      progress: quiet,
      write: (s) => {
        text += s;
      },
    });
    expect(text).toContain('cut off: features are "fc"');
    expect(out.metrics.backbone).toBe(path);
    // Features learnt on these shapes: a new head on them does as well as the model they came from.
    expect(out.metrics.target_test_acc).toBeGreaterThanOrEqual(0.6);
    expect(out.metrics.onnx_max_abs_diff).toBeLessThanOrEqual(1e-4);
    const meta = JSON.parse(
      readOnnxMetadata(await readFile(out.files.model))[PREPROCESS_KEY] as string,
    );
    expect(meta).toMatchObject({ layout: 'NHWC', height: 32, width: 32, channels: 3 });
  });

  it('a PyTorch export (NCHW, pretrained on other shapes) without metadata needs --image-size and --normalize, then fine-tunes far above chance', async () => {
    const args = {
      data: folder.root,
      backbone: TORCH_CNN,
      out: join(dir, 'out-torch'),
      backend: 'cpu',
      progress: quiet,
      write: () => {},
    };
    await expect(fitCommand(args)).rejects.toThrow(
      /has no preprocessing metadata \("transferlab\.preprocess"\): give --image-size N and --normalize imagenet\|none/,
    );
    await expect(fitCommand({ ...args, normalize: 'imagenet' })).rejects.toThrow(
      /give --image-size N,/,
    );
    let text = '';
    const out = await fitCommand({
      ...args,
      imageSize: 32,
      normalize: 'imagenet',
      epochs: 6,
      write: (s) => {
        text += s;
      },
    });
    expect(text).toContain('classifier layer /classifier/Gemm (Gemm) cut off');
    expect(text).toContain('input "image" [3,32,32] NCHW');
    expect(out.metrics.target_test_acc).toBeGreaterThanOrEqual(0.6);
    expect(out.metrics.onnx_max_abs_diff).toBeLessThanOrEqual(1e-4);
    const model = new Uint8Array(await readFile(out.files.model));
    const pre = JSON.parse(readOnnxMetadata(model)[PREPROCESS_KEY] as string);
    // The user's input name and layout are kept: the model takes what the PyTorch model took.
    expect(pre).toMatchObject({
      input: 'image',
      layout: 'NCHW',
      height: 32,
      width: 32,
      channels: 3,
    });
    // predict reads NCHW from the metadata and agrees with the final evaluation.
    const { predictions } = await predictCommand({
      model: out.files.model,
      images: folder.testImages.map((t) => t.path),
      write: () => {},
    });
    const acc =
      predictions.filter((p, i) => p.ok && p.top[0]?.index === folder.testImages[i]?.label).length /
      predictions.length;
    expect(acc).toBeCloseTo(out.metrics.target_test_acc, 12);
  });
});

describe('fit on a standard dataset', () => {
  it('cifar10 from a local archive in its official format (checked by SHA-256): trains, and augments arrays reproducibly', async () => {
    const archive = join(dir, 'cifar', 'cifar-10-binary.tar.gz');
    const { name, sha256, testLabels } = await makeShapeCifarArchive(archive, {
      train: 40,
      test: 15,
    });
    const standard = {
      localArchive: archive,
      sha256: { [name]: sha256 },
      cacheDir: join(dir, 'cache'),
    };
    const out = await fitCommand({
      data: 'cifar10',
      standard,
      backbone: 'cnn',
      method: 'scratch',
      epochs: 12,
      out: join(dir, 'out-cifar'),
      backend: 'cpu',
      progress: quiet,
      write: () => {},
    });
    expect(out.metrics.classes).toEqual([...SHAPE_CLASSES]);
    // CIFAR-10's test batch as it is; val is 10% of each class of its training batches.
    expect(out.metrics.sizes).toEqual({ train: 108, val: 12, test: testLabels.length });
    expect(out.metrics.target_test_acc).toBeGreaterThanOrEqual(0.6);
    expect(out.metrics.onnx_max_abs_diff).toBeLessThanOrEqual(1e-4);

    // Augmented epochs of an array dataset: a seed and an epoch replay, another epoch differs.
    const data = await resolveFitData('cifar10', 0, standard);
    const p = {
      layout: 'NCHW' as const,
      height: 24,
      width: 24,
      channels: 3 as const,
      transforms: evalTransforms(24, 24, null),
    };
    const train = await loadFitSplit(data, 'train', p, 0);
    expect(train.shape).toEqual([3, 24, 24]);
    const steps = trainTransforms(24, 24, { op: 'normalize', preset: 'imagenet' });
    const epoch = async (e: number) => {
      const parts: { x: Float32Array; y: Int32Array }[] = [];
      for await (const b of augmentedEpoch({
        data,
        train,
        steps,
        p,
        batchSize: 50,
        seed: 3,
        epoch: e,
      }))
        parts.push(b);
      return parts;
    };
    const [a, b, c] = [await epoch(1), await epoch(1), await epoch(2)];
    expect(a.map((t) => t.y.length)).toEqual([50, 50, 8]);
    expect(a[0]?.x.length).toBe(50 * 3 * 24 * 24);
    expect(a).toEqual(b);
    expect(a[0]?.x).not.toEqual(c[0]?.x);
    const labels = (parts: typeof a) => parts.flatMap((t) => Array.from(t.y)).sort();
    expect(labels(a)).toEqual(Array.from(train.y).sort());
  });
});

describe('augmented epochs of an image folder', () => {
  it('stream the decoded training images with random crops and flips, in NCHW, replayed by (seed, epoch)', async () => {
    const data = await resolveFitData(folder.root, 0);
    const p = {
      layout: 'NCHW' as const,
      height: 32,
      width: 32,
      channels: 3 as const,
      transforms: evalTransforms(32, 32, null),
    };
    const train = await loadFitSplit(data, 'train', p, 0);
    const steps = trainTransforms(32, 32, null);
    const epoch = async (e: number) => {
      const parts: { x: Float32Array; y: Int32Array }[] = [];
      for await (const b of augmentedEpoch({
        data,
        train,
        steps,
        p,
        batchSize: 64,
        seed: 1,
        epoch: e,
      }))
        parts.push(b);
      return parts;
    };
    const [a, b, c] = [await epoch(1), await epoch(1), await epoch(2)];
    expect(a.map((t) => t.y.length)).toEqual([64, 64, 16]);
    expect(a).toEqual(b);
    expect(a[0]?.x).not.toEqual(c[0]?.x);
    // No normalisation asked for: pixel / 255, in [0, 1].
    const x = a[0]?.x ?? new Float32Array(0);
    expect(x.reduce((m, v) => Math.min(m, v), 1)).toBeGreaterThanOrEqual(0);
    expect(x.reduce((m, v) => Math.max(m, v), 0)).toBeLessThanOrEqual(1);
  });
});

describe('fit with a source task', () => {
  it('pre-trains on the source folder, then joint trains on source batches and LwF distils the source head', async () => {
    const sourceRoot = join(dir, 'source');
    await makeShapeFolder(sourceRoot, { train: 20, val: 0, test: 0 }, 99, false);
    for (const method of ['joint', 'lwf']) {
      let text = '';
      const out = await fitCommand({
        data: folder.root,
        backbone: 'cnn',
        source: sourceRoot,
        sourceEpochs: 2,
        method,
        epochs: 2,
        out: join(dir, `out-${method}`),
        backend: 'cpu',
        progress: quiet,
        write: (s) => {
          text += s;
        },
      });
      expect(text).toContain('pre-trained on the source');
      expect(out.metrics).toMatchObject({ method, source: sourceRoot, source_train_size: 60 });
      expect(out.metrics.source_train_acc).toBeGreaterThan(0);
      expect(out.metrics.curve).toHaveLength(2);
      // The exported model is the backbone + the target head the method predicts with.
      expect(out.metrics.onnx_max_abs_diff).toBeLessThanOrEqual(1e-4);
    }
  });
});

describe('fit refuses with a clear error', () => {
  const base = () => ({
    data: folder.root,
    backbone: 'mlp',
    out: join(dir, 'never'),
    backend: 'cpu',
    progress: quiet,
    write: () => {},
  });

  it('an empty class folder', async () => {
    const root = join(dir, 'empty-class');
    await makeFolderWithEmptyClass(root);
    await expect(fitCommand({ ...base(), data: root })).rejects.toThrow(
      /class folder .*square has no images \(it is empty\)/,
    );
  });

  it('an unknown method, and a method that needs a source task, listing the supported ones', async () => {
    await expect(fitCommand({ ...base(), method: 'fine-tuen' })).rejects.toThrow(
      'fit: unknown method "fine-tuen". fit supports: fine-tune, linear-probe, scratch, l2-sp, delta, bss; with --source also joint, merlin, lwf, co-tuning',
    );
    await expect(fitCommand({ ...base(), method: 'joint' })).rejects.toThrow(
      /method "joint" needs a source task: give --source DIR .*fit supports: fine-tune, linear-probe, scratch, l2-sp, delta, bss; with --source also joint, merlin, lwf, co-tuning/,
    );
    await expect(fitCommand({ ...base(), method: 'l2t-ww', source: folder.root })).rejects.toThrow(
      /method "l2t-ww" trains a target network other than the backbone/,
    );
  });

  it('a missing --out, an unknown backbone, a bad method option, a missing folder', async () => {
    const { out: _, ...noOut } = base();
    await expect(fitCommand(noOut)).rejects.toThrow('fit: --out DIR is required');
    await expect(fitCommand({ ...base(), backbone: 'resnet50' })).rejects.toThrow(
      /unknown backbone "resnet50": give a built-in id \(mlp, cnn, .*\) or a path to a \.onnx file/,
    );
    await expect(fitCommand({ ...base(), set: ['lrr=0.1'] })).rejects.toThrow(/lrr/);
    await expect(fitCommand({ ...base(), data: join(dir, 'nope') })).rejects.toThrow(
      /does not exist/,
    );
    await expect(fitCommand({ ...base(), data: 'cifar11' })).rejects.toThrow(
      /no folder "cifar11", and no standard dataset of that name \(cifar10, cifar100, flowers102, pets, cub200\)/,
    );
  });
});
