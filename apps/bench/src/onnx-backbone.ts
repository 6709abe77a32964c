import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  adam,
  createRng,
  disposeOptimizerState,
  disposeParams,
  initBackend,
  type Params,
  softmaxCrossEntropy,
  trainStep,
} from '@transferlab/core';
import { type Dataset, subset, toTensors } from '@transferlab/datasets';
import { accuracy } from '@transferlab/evaluation';
import { type Engine, fineTune } from '@transferlab/methods';
import {
  createOnnxRuntimeExtractor,
  exportBackboneToOnnx,
  importOnnx,
  linearHead,
  loadNsfwMobileNetV2,
  type NsfwBackbone,
} from '@transferlab/models';
import { loadOrPretrain } from './pretrain-cache.js';
import { createProgress } from './progress.js';
import {
  createResultsLog,
  failedRecord,
  type SuiteRunOptions,
  type SuiteRunResult,
} from './results.js';
import { checkTaskOptions, defaultRegistries, type Registries } from './run-suite.js';
import { defaultPretrainConfig, type PretrainConfig, runTrial } from './runner.js';

/**
 * Backbones through ONNX: a backbone pre-trained on the source is exported to
 * ONNX and re-imported; the target is solved by a linear probe on features
 * extracted by onnxruntime and by fine-tuning the imported (tfjs) model; and
 * nsfwjs's pretrained MobileNetV2 (translated to ONNX) is probed on the same
 * target, its 28×28 grey images resized to 224×224 RGB as the model expects.
 */
export interface OnnxBackboneSuite {
  readonly kind: 'onnx-backbone';
  readonly id: string;
  readonly description: string;
  readonly backbone: string;
  readonly seeds: number;
  readonly task: { id: string; options?: Record<string, unknown> };
  /** Target test examples used (a seeded subsample; MobileNetV2 at 224×224 is slow). */
  readonly testPoints: number;
  readonly probeEpochs: number;
  readonly mobilenet: boolean;
  /**
   * Fine-tune MobileNetV2 itself in tfjs, BatchNormalization in training mode
   * and frozen, on the first `seeds` seeds (a trial takes minutes at 224×224
   * on 2 cores); `testPoints` caps its test set; `options` go to fine-tune.
   */
  readonly mobilenetFineTune?: {
    seeds: number;
    testPoints: number;
    options: Record<string, unknown>;
  };
  readonly pretrain?: Partial<PretrainConfig>;
  readonly fineTune?: Record<string, unknown>;
}

/** A linear head trained with Adam on fixed features; the epoch with the best val accuracy is kept. */
export function linearProbeOnFeatures(args: {
  train: { x: Float32Array; y: Int32Array };
  val: { x: Float32Array; y: Int32Array };
  test: { x: Float32Array; y: Int32Array };
  dim: number;
  numClasses: number;
  epochs: number;
  seed: number;
}): { testAcc: number; valAcc: number } {
  const head = linearHead(args.dim, args.numClasses);
  const optimizer = adam({ lr: 1e-2 });
  let params: Params = head.init(createRng(args.seed).derive('probe'));
  let state = optimizer.init(params);
  const t = (d: { x: Float32Array; y: Int32Array }) => ({
    x: tf.tensor2d(d.x, [d.y.length, args.dim]),
    y: tf.tensor1d(d.y, 'int32'),
  });
  const train = t(args.train);
  const val = t(args.val);
  const test = t(args.test);
  let best = { valAcc: -1, testAcc: 0 };
  try {
    for (let epoch = 0; epoch < args.epochs; epoch++) {
      ({ params, state } = trainStep({
        params,
        state,
        optimizer,
        loss: (p) => softmaxCrossEntropy(head.apply(p, train.x), train.y),
      }));
      const valAcc = tf.tidy(() => accuracy(head.apply(params, val.x), val.y));
      if (valAcc > best.valAcc) {
        best = { valAcc, testAcc: tf.tidy(() => accuracy(head.apply(params, test.x), test.y)) };
      }
    }
    return best;
  } finally {
    disposeParams(params);
    disposeOptimizerState(state);
    for (const d of [train, val, test]) tf.dispose([d.x, d.y]);
  }
}

/** Grey 28×28 images → RGB size×size in [0, 1], bilinear, as nsfwjs prepares its input. */
function toRgb(ds: Dataset, size: number): Float32Array {
  return tf.tidy(() => {
    const { x } = toTensors(ds);
    const resized = tf.image.resizeBilinear(x as tf.Tensor4D, [size, size], true);
    return tf.tile(resized, [1, 1, 1, 3]).dataSync() as Float32Array;
  });
}

export async function runOnnxBackbone(
  opts: SuiteRunOptions<OnnxBackboneSuite> & { registries?: Registries; engine?: Engine },
): Promise<SuiteRunResult> {
  const { suite } = opts;
  const reg = opts.registries ?? defaultRegistries();
  const factory = reg.backbones.get(suite.backbone);
  const spec = reg.tasks.get(suite.task.id);
  checkTaskOptions(suite.id, spec, suite.task.options);
  const ftConfig = fineTune.validate(suite.fineTune ?? {});
  const backend = await initBackend(opts.backend ? { backend: opts.backend } : {});
  const progress = opts.progress ?? createProgress();
  const run = new Date().toISOString();
  const seeds = opts.seeds ?? suite.seeds;
  const log = createResultsLog(opts.outDir, (r) => {
    const acc = r.metrics.target_test_acc;
    progress.done(
      `${r.task} ${r.method} seed ${r.seed}: ${r.status === 'ok' ? `acc ${(100 * (acc ?? 0)).toFixed(1)}%` : `FAILED: ${r.error}`}`,
    );
  });
  for (let seed = 0; seed < seeds; seed++) {
    const pair = await spec.build({ ...suite.task.options, seed });
    const test =
      pair.target.test.y.length > suite.testPoints
        ? subset(
            pair.target.test,
            createRng(seed)
              .derive('onnx-test')
              .permutation(pair.target.test.y.length)
              .subarray(0, suite.testPoints),
          )
        : pair.target.test;
    const task = { ...pair, target: { ...pair.target, test } };
    const base = { suite: suite.id, run, task: suite.task.id, seed, backend: backend.name };
    const backbone = factory.create(task.target.train.shape);
    const pre = await loadOrPretrain({
      sourceKey: { task: suite.task.id, options: suite.task.options ?? {} },
      source: task.source.train,
      backbone,
      seed,
      config: { ...defaultPretrainConfig, ...suite.pretrain },
      ...(opts.engine ? { engine: opts.engine } : {}),
      cacheDir: join(opts.outDir, 'cache'),
      onEpoch: (e) => progress.epoch('pretrain', e.epoch, e.epochs),
    });
    const bytes = exportBackboneToOnnx(backbone, pre.params);
    const imported = importOnnx(bytes, { source: `${suite.task.id} backbone` });
    const roundTrip = tf.tidy(() => {
      const { x } = toTensors(
        test,
        Int32Array.from({ length: Math.min(64, test.y.length) }, (_, i) => i),
      );
      return tf
        .max(
          tf.abs(
            tf.sub(
              backbone.apply(pre.params, x).features,
              imported.backbone.apply(imported.params, x).features,
            ),
          ),
        )
        .dataSync()[0] as number;
    });
    const extract = async (
      model: Uint8Array,
      x: Float32Array,
      n: number,
      shape: readonly number[],
    ) => {
      const ex = await createOnnxRuntimeExtractor(model, { inputShape: shape, batchSize: 64 });
      try {
        const t0 = performance.now();
        const out = await ex.run(x, n);
        return { out, imagesPerSecond: n / ((performance.now() - t0) / 1000) };
      } finally {
        await ex.dispose();
      }
    };
    // (a) linear probe on features extracted by onnxruntime
    try {
      const started = Date.now();
      const dim = imported.backbone.featureDim;
      const feats = async (ds: Dataset) => (await extract(bytes, ds.x, ds.y.length, ds.shape)).out;
      const t0 = performance.now();
      const train = { x: await feats(task.target.train), y: task.target.train.y };
      const val = { x: await feats(task.target.val), y: task.target.val.y };
      const testF = { x: await feats(test), y: test.y };
      const extractSeconds = (performance.now() - t0) / 1000;
      const probe = linearProbeOnFeatures({
        train,
        val,
        test: testF,
        dim,
        numClasses: task.target.train.numClasses,
        epochs: suite.probeEpochs,
        seed,
      });
      const n = train.y.length + val.y.length + testF.y.length;
      log.add({
        ...base,
        method: 'linear-probe (onnxruntime)',
        status: 'ok',
        metrics: {
          target_test_acc: probe.testAcc,
          target_val_acc: probe.valAcc,
          roundtrip_max_abs_diff: roundTrip,
          images_per_second: n / extractSeconds,
        },
        durationMs: Date.now() - started,
      });
    } catch (err) {
      log.add(failedRecord({ ...base, method: 'linear-probe (onnxruntime)' }, err, Date.now()));
    }
    // (b) fine-tuning the re-imported ONNX backbone in tfjs
    try {
      const started = Date.now();
      const out = await runTrial({
        task,
        method: fineTune,
        config: ftConfig,
        backbone: imported.backbone,
        seed,
        pretrained: imported.params,
        ...(opts.engine ? { engine: opts.engine } : {}),
        onEpoch: (e) => progress.epoch('fine-tune', e.epoch, e.epochs),
      });
      log.add({
        ...base,
        engine: out.engine,
        method: 'fine-tune (imported)',
        status: 'ok',
        metrics: { ...out.metrics, roundtrip_max_abs_diff: roundTrip },
        durationMs: Date.now() - started,
      });
    } catch (err) {
      log.add(failedRecord({ ...base, method: 'fine-tune (imported)' }, err, Date.now()));
    }
    disposeParams(pre.params);
    disposeParams(pre.sourceHead);
    disposeParams(imported.params);
    // (c) nsfwjs MobileNetV2, probed through onnxruntime
    if (suite.mobilenet) {
      try {
        const started = Date.now();
        const mobilenet = await loadNsfwMobileNetV2();
        disposeParams(mobilenet.params);
        const size = mobilenet.inputShape[0];
        // 224×224×3 floats are 600 kB an image: resize and run in chunks, one session for all.
        const ex = await createOnnxRuntimeExtractor(mobilenet.onnxBytes, {
          inputShape: mobilenet.inputShape,
          batchSize: 32,
        });
        const feats = async (ds: Dataset) => {
          const parts: Float32Array[] = [];
          const t0 = performance.now();
          for (let start = 0; start < ds.y.length; start += 64) {
            const idx = Int32Array.from(
              { length: Math.min(64, ds.y.length - start) },
              (_, i) => start + i,
            );
            parts.push(await ex.run(toRgb(subset(ds, idx), size), idx.length));
          }
          const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
          let offset = 0;
          for (const p of parts) {
            out.set(p, offset);
            offset += p.length;
          }
          return { out, imagesPerSecond: ds.y.length / ((performance.now() - t0) / 1000) };
        };
        const train = await feats(task.target.train);
        const val = await feats(task.target.val);
        const testF = await feats(test);
        await ex.dispose();
        const dim = train.out.length / task.target.train.y.length;
        const probe = linearProbeOnFeatures({
          train: { x: train.out, y: task.target.train.y },
          val: { x: val.out, y: task.target.val.y },
          test: { x: testF.out, y: test.y },
          dim,
          numClasses: task.target.train.numClasses,
          epochs: suite.probeEpochs,
          seed,
        });
        log.add({
          ...base,
          method: 'mobilenetv2 probe (onnxruntime)',
          status: 'ok',
          metrics: {
            target_test_acc: probe.testAcc,
            target_val_acc: probe.valAcc,
            images_per_second: testF.imagesPerSecond,
            feature_dim: dim,
          },
          durationMs: Date.now() - started,
        });
      } catch (err) {
        log.add(
          failedRecord({ ...base, method: 'mobilenetv2 probe (onnxruntime)' }, err, Date.now()),
        );
      }
    }
    // (d) MobileNetV2 fine-tuned in tfjs: BatchNormalization trained (batch
    // statistics, moving averages carried) vs frozen at the pretrained statistics
    const mft = suite.mobilenetFineTune;
    if (suite.mobilenet && mft && seed < mft.seeds) {
      const methods = [false, true].map((freezeBatchNorm) => ({
        freezeBatchNorm,
        label: `mobilenetv2 fine-tune (BN ${freezeBatchNorm ? 'frozen' : 'trained'})`,
      }));
      // The model and the resized splits are shared by both trials (fine-tune trains a copy).
      let prepared: { mobilenet: NsfwBackbone; task: typeof task } | undefined;
      const preparedAt = Date.now();
      try {
        const mobilenet = await loadNsfwMobileNetV2();
        const size = mobilenet.inputShape[0];
        // In chunks: a whole resized split at once would take hundreds of MB of wasm heap.
        const rgb = (ds: Dataset): Dataset => {
          const per = size * size * 3;
          const x = new Float32Array(ds.y.length * per);
          for (let start = 0; start < ds.y.length; start += 64) {
            const idx = Int32Array.from(
              { length: Math.min(64, ds.y.length - start) },
              (_, i) => start + i,
            );
            x.set(toRgb(subset(ds, idx), size), start * per);
          }
          return { ...ds, x, shape: [...mobilenet.inputShape] };
        };
        const small = subset(
          test,
          Int32Array.from({ length: Math.min(mft.testPoints, test.y.length) }, (_, i) => i),
        );
        prepared = {
          mobilenet,
          task: {
            ...task,
            target: {
              train: rgb(task.target.train),
              val: rgb(task.target.val),
              test: rgb(small),
            },
          },
        };
      } catch (err) {
        for (const m of methods)
          log.add(failedRecord({ ...base, method: m.label }, err, preparedAt));
      }
      if (prepared) {
        const { mobilenet } = prepared;
        for (const { freezeBatchNorm, label } of methods) {
          const started = Date.now();
          try {
            const out = await runTrial({
              task: prepared.task,
              method: fineTune,
              config: fineTune.validate({ ...mft.options, freezeBatchNorm }),
              backbone: mobilenet.backbone,
              seed,
              pretrained: mobilenet.params,
              ...(opts.engine ? { engine: opts.engine } : {}),
              onEpoch: (e) => progress.epoch('fine-tune', e.epoch, e.epochs),
            });
            log.add({
              ...base,
              engine: out.engine,
              method: label,
              status: 'ok',
              metrics: out.metrics,
              durationMs: Date.now() - started,
              curve: out.curve,
            });
          } catch (err) {
            log.add(failedRecord({ ...base, method: label }, err, started));
          }
        }
        disposeParams(mobilenet.params);
      }
    }
  }
  progress.close();
  return { records: log.records, backend: backend.name, resultsPath: log.path };
}
