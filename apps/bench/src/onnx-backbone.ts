import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  adam,
  createRng,
  disposeOptimizerState,
  disposeParams,
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
import { z } from 'zod';
import { type ExecuteOptions, type ExecuteResult, executeSuite } from './execute.js';
import { loadOrPretrain } from './pretrain-cache.js';
import { formatPairedTable, formatTable } from './report.js';
import type { TrialRecord } from './results.js';
import { checkTaskOptions, pretrainSchema, type Registries } from './run-suite.js';
import { defaultPretrainConfig, type PretrainConfig, runTrial } from './runner.js';
import {
  failedOutcome,
  type PlannedUnit,
  SUITE_KIND_SPECIFICATION_VERSION,
  type SuiteKind,
  type UnitContext,
} from './suite-kind.js';

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

const options = z.record(z.string(), z.unknown());

export const onnxBackboneSuiteSchema = z.strictObject({
  kind: z.literal('onnx-backbone'),
  id: z.string().min(1),
  description: z.string(),
  backbone: z.string().min(1),
  seeds: z.number().int().positive(),
  task: z.strictObject({ id: z.string().min(1), options: options.optional() }),
  testPoints: z.number().int().positive(),
  probeEpochs: z.number().int().positive(),
  mobilenet: z.boolean(),
  mobilenetFineTune: z
    .strictObject({
      seeds: z.number().int().positive(),
      testPoints: z.number().int().positive(),
      options,
    })
    .optional(),
  pretrain: pretrainSchema,
  fineTune: options.optional(),
}) satisfies z.ZodType<OnnxBackboneSuite>;

/** The methods as records name them. */
export const ONNX_METHODS = {
  probe: 'linear-probe (onnxruntime)',
  fineTune: 'fine-tune (imported)',
  mobilenetProbe: 'mobilenetv2 probe (onnxruntime)',
  mobilenetTrainedBn: 'mobilenetv2 fine-tune (BN trained)',
  mobilenetFrozenBn: 'mobilenetv2 fine-tune (BN frozen)',
} as const;

function at<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}

/** The suite against the registries, before any work; returns the validated fine-tune configs. */
function resolveOnnxBackbone(suite: OnnxBackboneSuite, reg: Registries) {
  at('backbone', () => reg.backbones.get(suite.backbone));
  const spec = at('task.id', () => reg.tasks.get(suite.task.id));
  at('task.options', () => checkTaskOptions(suite.id, spec, suite.task.options));
  const ftConfig = at('fineTune', () => fineTune.validate(suite.fineTune ?? {}));
  const mft = suite.mobilenetFineTune;
  if (mft && !suite.mobilenet) throw new Error('mobilenetFineTune: runs only with mobilenet: true');
  const mobilenetConfig = (freezeBatchNorm: boolean) =>
    at('mobilenetFineTune.options', () => fineTune.validate({ ...mft?.options, freezeBatchNorm }));
  return {
    ftConfig,
    mobilenetConfigs: mft
      ? { trained: mobilenetConfig(false), frozen: mobilenetConfig(true) }
      : undefined,
  };
}

/**
 * One unit per seed: the seed's target splits serve every method, and its
 * source pre-training and ONNX round trip both the probe and the fine-tune
 * of the import. MobileNetV2 fine-tuning runs on the first
 * `mobilenetFineTune.seeds` seeds only.
 */
function planOnnxBackbone(
  suite: OnnxBackboneSuite,
  seeds: readonly number[],
  ctx: { engine?: Engine; backend?: string; registries: Registries },
): PlannedUnit[] {
  const { ftConfig, mobilenetConfigs } = resolveOnnxBackbone(suite, ctx.registries);
  const common = {
    task: { id: suite.task.id, options: suite.task.options ?? {} },
    testPoints: suite.testPoints,
    backend: ctx.backend ?? 'default',
  };
  // The engine pre-trains the source and fine-tunes: it shapes every own-backbone result.
  const own = {
    ...common,
    backbone: suite.backbone,
    pretrain: { ...defaultPretrainConfig, ...suite.pretrain },
    engine: ctx.engine ?? 'default',
  };
  const mft = suite.mobilenetFineTune;
  return seeds.map((seed) => {
    const trials: { method: string; determinants: unknown }[] = [
      { method: ONNX_METHODS.probe, determinants: { ...own, probeEpochs: suite.probeEpochs } },
      { method: ONNX_METHODS.fineTune, determinants: { ...own, fineTune: ftConfig } },
    ];
    if (suite.mobilenet)
      trials.push({
        method: ONNX_METHODS.mobilenetProbe,
        determinants: { ...common, probeEpochs: suite.probeEpochs },
      });
    if (suite.mobilenet && mft && mobilenetConfigs && seed < mft.seeds) {
      const tuned = { ...common, mobilenetTestPoints: mft.testPoints, engine: own.engine };
      trials.push(
        {
          method: ONNX_METHODS.mobilenetTrainedBn,
          determinants: { ...tuned, fineTune: mobilenetConfigs.trained },
        },
        {
          method: ONNX_METHODS.mobilenetFrozenBn,
          determinants: { ...tuned, fineTune: mobilenetConfigs.frozen },
        },
      );
    }
    return {
      id: `seed ${seed}`,
      seed,
      trials: trials.map((t) => ({ task: suite.task.id, seed, ...t })),
    };
  });
}

async function runOnnxBackboneUnit(
  suite: OnnxBackboneSuite,
  unit: PlannedUnit,
  ctx: UnitContext,
): Promise<void> {
  const { seed } = unit;
  const { progress } = ctx;
  const planned = new Set(unit.trials.map((t) => t.method));
  const pending = (method: string) => planned.has(method) && !ctx.isDone(suite.task.id, method);
  const { ftConfig, mobilenetConfigs } = resolveOnnxBackbone(suite, ctx.registries);
  const base = { task: suite.task.id, seed, backend: ctx.backend };
  const failed = (method: string, err: unknown, started: number) =>
    ctx.record(failedOutcome({ ...base, method }, err, started));
  // Every method needs the target's splits: a failure here is thrown and fails them all.
  const pair = await ctx.registries.tasks.get(suite.task.id).build({ ...suite.task.options, seed });
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
  const step = (label: string, i: number) =>
    progress.trial(`${suite.task.id} · ${label} · seed ${seed}`, i, unit.trials.length);

  if (pending(ONNX_METHODS.probe) || pending(ONNX_METHODS.fineTune)) {
    // Source pre-training and the ONNX round trip, shared by (a) and (b).
    const backbone = ctx.registries.backbones.get(suite.backbone).create(task.target.train.shape);
    let pre: Awaited<ReturnType<typeof loadOrPretrain>> | undefined;
    let imported: ReturnType<typeof importOnnx> | undefined;
    let bytes: Uint8Array | undefined;
    let roundTrip = Number.NaN;
    let setupError: Error | undefined;
    try {
      step('pre-training and ONNX export', 0);
      pre = await loadOrPretrain({
        sourceKey: { task: suite.task.id, options: suite.task.options ?? {} },
        source: task.source.train,
        backbone,
        seed,
        config: { ...defaultPretrainConfig, ...suite.pretrain },
        ...(ctx.engine ? { engine: ctx.engine } : {}),
        ...(ctx.diskCache ? { cacheDir: join(ctx.outDir, 'cache') } : {}),
        onEpoch: (e) => progress.epoch('pretrain', e.epoch, e.epochs),
      });
      const params = pre.params;
      bytes = exportBackboneToOnnx(backbone, params);
      const back = importOnnx(bytes, { source: `${suite.task.id} backbone` });
      imported = back;
      roundTrip = tf.tidy(() => {
        const { x } = toTensors(
          test,
          Int32Array.from({ length: Math.min(64, test.y.length) }, (_, i) => i),
        );
        return tf
          .max(
            tf.abs(
              tf.sub(
                backbone.apply(params, x).features,
                back.backbone.apply(back.params, x).features,
              ),
            ),
          )
          .dataSync()[0] as number;
      });
    } catch (err) {
      setupError = new Error(
        `source pre-training or the ONNX round trip failed: ${(err as Error).message}`,
      );
    }
    try {
      // (a) linear probe on features extracted by onnxruntime
      if (pending(ONNX_METHODS.probe)) {
        step(ONNX_METHODS.probe, 0);
        const started = Date.now();
        try {
          if (setupError || !imported || !bytes) throw setupError ?? new Error('no ONNX model');
          const model = bytes;
          const dim = imported.backbone.featureDim;
          const feats = async (ds: Dataset) => {
            const ex = await createOnnxRuntimeExtractor(model, {
              inputShape: ds.shape,
              batchSize: 64,
            });
            try {
              return await ex.run(ds.x, ds.y.length);
            } finally {
              await ex.dispose();
            }
          };
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
          ctx.record({
            ...base,
            method: ONNX_METHODS.probe,
            status: 'ok',
            metrics: {
              target_test_acc: probe.testAcc,
              target_val_acc: probe.valAcc,
              roundtrip_max_abs_diff: roundTrip,
              images_per_second: n / extractSeconds,
            },
            durationMs: Date.now() - started,
            timestamp: new Date().toISOString(),
          });
        } catch (err) {
          failed(ONNX_METHODS.probe, err, started);
        }
      }
      // (b) fine-tuning the re-imported ONNX backbone
      if (pending(ONNX_METHODS.fineTune)) {
        step(ONNX_METHODS.fineTune, 1);
        const started = Date.now();
        let out: Awaited<ReturnType<typeof runTrial>> | undefined;
        try {
          if (setupError || !imported) throw setupError ?? new Error('no imported backbone');
          out = await runTrial({
            task,
            method: fineTune,
            config: ftConfig,
            backbone: imported.backbone,
            seed,
            pretrained: imported.params,
            ...(ctx.engine ? { engine: ctx.engine } : {}),
            onEpoch: (e) => progress.epoch('fine-tune', e.epoch, e.epochs),
          });
        } catch (err) {
          failed(ONNX_METHODS.fineTune, err, started);
        }
        if (out)
          ctx.record({
            ...base,
            engine: out.engine,
            method: ONNX_METHODS.fineTune,
            status: 'ok',
            metrics: { ...out.metrics, roundtrip_max_abs_diff: roundTrip },
            durationMs: Date.now() - started,
            timestamp: new Date().toISOString(),
          });
      }
    } finally {
      disposeParams(pre?.params);
      disposeParams(pre?.sourceHead);
      disposeParams(imported?.params);
    }
  }

  // (c) nsfwjs MobileNetV2, probed through onnxruntime
  if (pending(ONNX_METHODS.mobilenetProbe)) {
    step(ONNX_METHODS.mobilenetProbe, 2);
    const started = Date.now();
    try {
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
      let features: { train: Float32Array; val: Float32Array; test: Float32Array; ips: number };
      try {
        const train = await feats(task.target.train);
        const val = await feats(task.target.val);
        const testF = await feats(test);
        features = { train: train.out, val: val.out, test: testF.out, ips: testF.imagesPerSecond };
      } finally {
        await ex.dispose();
      }
      const dim = features.train.length / task.target.train.y.length;
      const probe = linearProbeOnFeatures({
        train: { x: features.train, y: task.target.train.y },
        val: { x: features.val, y: task.target.val.y },
        test: { x: features.test, y: test.y },
        dim,
        numClasses: task.target.train.numClasses,
        epochs: suite.probeEpochs,
        seed,
      });
      ctx.record({
        ...base,
        method: ONNX_METHODS.mobilenetProbe,
        status: 'ok',
        metrics: {
          target_test_acc: probe.testAcc,
          target_val_acc: probe.valAcc,
          images_per_second: features.ips,
          feature_dim: dim,
        },
        durationMs: Date.now() - started,
        timestamp: new Date().toISOString(),
      });
    } catch (err) {
      failed(ONNX_METHODS.mobilenetProbe, err, started);
    }
  }

  // (d) MobileNetV2 fine-tuned: BatchNormalization trained (batch statistics,
  // moving averages carried) vs frozen at the pretrained statistics
  const mft = suite.mobilenetFineTune;
  const tunings = [
    { label: ONNX_METHODS.mobilenetTrainedBn, config: mobilenetConfigs?.trained },
    { label: ONNX_METHODS.mobilenetFrozenBn, config: mobilenetConfigs?.frozen },
  ].filter((m) => pending(m.label));
  if (mft && tunings.length > 0) {
    // The model and the resized splits are shared by both trials (fine-tune trains a copy).
    let prepared: { mobilenet: NsfwBackbone; task: typeof task } | undefined;
    const preparedAt = Date.now();
    try {
      step('MobileNetV2 inputs', 3);
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
      for (const m of tunings) failed(m.label, err, preparedAt);
    }
    if (prepared) {
      const { mobilenet } = prepared;
      try {
        for (const [i, { label, config }] of tunings.entries()) {
          step(label, 3 + i);
          const started = Date.now();
          let out: Awaited<ReturnType<typeof runTrial>> | undefined;
          try {
            out = await runTrial({
              task: prepared.task,
              method: fineTune,
              config: config as NonNullable<typeof config>,
              backbone: mobilenet.backbone,
              seed,
              pretrained: mobilenet.params,
              ...(ctx.engine ? { engine: ctx.engine } : {}),
              onEpoch: (e) => progress.epoch('fine-tune', e.epoch, e.epochs),
            });
          } catch (err) {
            failed(label, err, started);
          }
          if (out)
            ctx.record({
              ...base,
              engine: out.engine,
              method: label,
              status: 'ok',
              metrics: out.metrics,
              durationMs: Date.now() - started,
              curve: out.curve,
              timestamp: new Date().toISOString(),
            });
        }
      } finally {
        disposeParams(mobilenet.params);
      }
    }
  }
}

/**
 * Target accuracy per method, paired against fine-tuning the import, then
 * what the ONNX path costs and changes: the round trip's largest feature
 * difference and the extraction throughput.
 */
export function summarizeOnnxBackbone(records: readonly TrialRecord[], metric?: string): string {
  const parts = [formatTable(records, metric)];
  const paired = formatPairedTable(records, ONNX_METHODS.fineTune, metric);
  if (paired) parts.push(paired);
  const ok = records.filter((r) => r.status === 'ok');
  const methods = [...new Set(ok.map((r) => r.method))].filter((m) =>
    ok.some(
      (r) =>
        r.method === m &&
        (r.metrics.roundtrip_max_abs_diff !== undefined ||
          r.metrics.images_per_second !== undefined),
    ),
  );
  if (methods.length > 0) {
    const lines = [
      'ONNX path: largest |feature difference| after export and re-import (max over seeds), onnxruntime images/s (mean over seeds)',
      '| method | round trip max abs diff | images/s |',
      '|---|---|---|',
    ];
    for (const m of methods) {
      const rs = ok.filter((r) => r.method === m);
      const diffs = rs
        .map((r) => r.metrics.roundtrip_max_abs_diff)
        .filter((v): v is number => v !== undefined);
      const ips = rs
        .map((r) => r.metrics.images_per_second)
        .filter((v): v is number => v !== undefined);
      lines.push(
        `| ${m} | ${diffs.length ? Math.max(...diffs).toExponential(1) : ''} | ${ips.length ? (ips.reduce((a, b) => a + b, 0) / ips.length).toFixed(0) : ''} |`,
      );
    }
    parts.push(lines.join('\n'));
  }
  return parts.join('\n\n');
}

export const onnxBackboneKind: SuiteKind<OnnxBackboneSuite> = {
  specificationVersion: SUITE_KIND_SPECIFICATION_VERSION,
  id: 'onnx-backbone',
  description:
    "A source-pretrained backbone exported to ONNX and re-imported: linear probe on onnxruntime features vs fine-tuning the import; nsfwjs's MobileNetV2 probed (and fine-tuned) on the same target.",
  schema: onnxBackboneSuiteSchema,
  firstSeed: true,
  check(suite, registries) {
    resolveOnnxBackbone(suite, registries);
  },
  plan: planOnnxBackbone,
  runUnit: runOnnxBackboneUnit,
  summarize: (records, opts) => summarizeOnnxBackbone(records, opts.metric),
};

/** Run an onnx-backbone suite (see `executeSuite`: checks first, resume, one record per trial as it ends). */
export function runOnnxBackbone(
  opts: Omit<ExecuteOptions, 'kind' | 'suite'> & { suite: OnnxBackboneSuite },
): Promise<ExecuteResult> {
  const { suite, ...rest } = opts;
  return executeSuite({ kind: onnxBackboneKind, suite, ...rest });
}
