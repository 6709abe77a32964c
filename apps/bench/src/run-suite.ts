import { join } from 'node:path';
import {
  type BackendInfo,
  disposeParams,
  initBackend,
  type Params,
  type Registry,
} from '@transferlab/core';
import { createTaskRegistry, type TaskPair, type TaskSpec } from '@transferlab/datasets';
import { type AnyTransferMethod, createMethodRegistry, type Engine } from '@transferlab/methods';
import { type BackboneFactory, createBackboneRegistry } from '@transferlab/models';
import { loadOrPretrain } from './pretrain-cache.js';
import { createProgress, type Progress, safeProgress } from './progress.js';
import { createResultsLog, type TrialRecord } from './results.js';
import { chooseEngine, defaultPretrainConfig, type PretrainConfig, runTrial } from './runner.js';
import type { SuiteSpec } from './suites.js';

export interface Registries {
  tasks: Registry<TaskSpec>;
  methods: Registry<AnyTransferMethod>;
  backbones: Registry<BackboneFactory>;
}

export function defaultRegistries(): Registries {
  return {
    tasks: createTaskRegistry(),
    methods: createMethodRegistry(),
    backbones: createBackboneRegistry(),
  };
}

/**
 * Refuse build options the task does not read (`labelsPerClas` would
 * otherwise be dropped silently and the run use the default). Tasks that do
 * not declare their options are not checked.
 */
export function checkTaskOptions(
  suiteId: string,
  spec: Pick<TaskSpec, 'id' | 'options'>,
  options: Readonly<Record<string, unknown>> | undefined,
): void {
  if (!spec.options || !options) return;
  const valid = new Set(spec.options);
  const unknown = Object.keys(options).filter((k) => !valid.has(k));
  if (unknown.length > 0)
    throw new Error(
      `suite "${suiteId}": task "${spec.id}" has no option ${unknown.map((k) => `"${k}"`).join(', ')}. Valid options: ${spec.options.join(', ')}`,
    );
}

export interface RunSuiteOptions {
  suite: SuiteSpec;
  seeds?: number;
  /** The first seed (default 0): seeds firstSeed … firstSeed + seeds − 1, so a long sweep can be split across processes. */
  firstSeed?: number;
  outDir: string;
  backend?: string;
  /** The training engine asked for (default: onnxruntime for every method and backbone it covers, tfjs otherwise). */
  engine?: Engine;
  registries?: Registries;
  progress?: Progress;
  /** Keep pre-trained backbones in `outDir/cache` and reuse them across runs (default true). */
  diskCache?: boolean;
}

export interface RunSuiteResult {
  records: TrialRecord[];
  backend: BackendInfo;
  resultsPath: string;
}

/**
 * Run every (seed, task, method) trial of a suite. Ids are checked before
 * any work starts; each trial's record is appended to results.jsonl as soon
 * as it ends; a failing trial is recorded as failed and the suite goes on.
 * Source pre-training runs once per (task, seed, backbone) and is cached.
 */
export async function runSuite(opts: RunSuiteOptions): Promise<RunSuiteResult> {
  const { suite } = opts;
  const reg = opts.registries ?? defaultRegistries();
  const seeds = opts.seeds ?? suite.seeds;
  if (!Number.isInteger(seeds) || seeds < 1)
    throw new Error(`--seeds must be a positive integer, got ${seeds}`);
  // Fail fast on unknown ids and bad method options, before hours of work.
  const backboneFactory = reg.backbones.get(suite.backbone);
  const tasks = suite.tasks.map((t) => {
    const spec = reg.tasks.get(t.id);
    checkTaskOptions(suite.id, spec, t.options);
    return { spec, options: t.options ?? {}, label: t.label ?? t.id };
  });
  const labels = tasks.map((t) => t.label);
  const repeated = labels.find((l, i) => labels.indexOf(l) !== i);
  if (repeated)
    throw new Error(
      `suite "${suite.id}": task "${repeated}" appears twice; give each entry its own label`,
    );
  const methods = suite.methods.map((m) => {
    const method = reg.methods.get(m.id);
    const ownBackbone = m.backbone !== undefined ? reg.backbones.get(m.backbone) : undefined;
    if (ownBackbone && method.needs.pretrainedBackbone && m.backbone !== suite.backbone) {
      throw new Error(
        `suite "${suite.id}": method "${m.label ?? m.id}" starts from the pre-trained "${suite.backbone}" backbone and cannot train backbone "${m.backbone}"`,
      );
    }
    return {
      method,
      ownBackbone,
      label: m.label ?? m.id,
      config: method.validate(m.options ?? {}) as Record<string, unknown> & {
        epochs: number;
        batchSize: number;
      },
    };
  });
  const methodLabels = methods.map((m) => m.label);
  const twice = methodLabels.find((l, i) => methodLabels.indexOf(l) !== i);
  if (twice)
    throw new Error(
      `suite "${suite.id}": method "${twice}" appears twice; give each entry its own label`,
    );
  const pretrainConfig: PretrainConfig = { ...defaultPretrainConfig, ...suite.pretrain };

  const backend = await initBackend(opts.backend ? { backend: opts.backend } : {});
  const progress = safeProgress(opts.progress ?? createProgress());
  const cacheDir = join(opts.outDir, 'cache');
  const run = new Date().toISOString();
  const total = seeds * tasks.length * methods.length;
  let index = 0;

  const log = createResultsLog(opts.outDir, (r) => {
    const m =
      r.status === 'ok'
        ? `acc ${(100 * (r.metrics.target_test_acc ?? Number.NaN)).toFixed(1)}%`
        : `FAILED: ${r.error}`;
    progress.done(
      `${r.task} ${r.method} seed ${r.seed}: ${m} (${(r.durationMs / 1000).toFixed(1)} s)`,
    );
  });
  const record = log.add;

  const firstSeed = opts.firstSeed ?? 0;
  if (!Number.isInteger(firstSeed) || firstSeed < 0)
    throw new Error(`--first-seed must be a non-negative integer, got ${firstSeed}`);
  for (let seed = firstSeed; seed < firstSeed + seeds; seed++) {
    for (const { spec, options, label: taskLabel } of tasks) {
      let task: TaskPair | undefined;
      let taskError: string | undefined;
      try {
        task = await spec.build({ ...options, seed });
      } catch (err) {
        taskError = `building task "${spec.id}" failed: ${(err as Error).message}`;
      }
      let pretrained: Params | undefined;
      let sourceHead: Params | undefined;
      let pretrainError: string | undefined;
      let pretrainMetrics: Record<string, number> = {};
      let pretrainTimings: Record<string, number> | undefined;
      const needsPretrain = methods.some((m) => m.method.needs.pretrainedBackbone);
      const backbone = task ? backboneFactory.create(task.target.train.shape) : undefined;
      if (task && backbone && needsPretrain) {
        progress.trial(`${taskLabel} pre-training (seed ${seed})`, index, total);
        try {
          const out = await loadOrPretrain({
            sourceKey: { task: spec.id, options },
            source: task.source.train,
            backbone,
            seed,
            config: pretrainConfig,
            ...(opts.engine ? { engine: opts.engine } : {}),
            ...(opts.diskCache !== false ? { cacheDir } : {}),
            onEpoch: (e) => progress.epoch('pretrain', e.epoch, e.epochs),
          });
          pretrained = out.params;
          sourceHead = out.sourceHead;
          pretrainMetrics = { source_train_acc: out.sourceTrainAcc };
          // Wall-clock, so kept out of the metrics: equal seeds must give equal metrics.
          pretrainTimings = out.fromCache ? undefined : { pretrain_ms: out.pretrainMs };
        } catch (err) {
          pretrainError = `source pre-training failed: ${(err as Error).message}`;
        }
      }
      for (const { method, config, label: methodLabel, ownBackbone } of methods) {
        const trained =
          task && ownBackbone ? ownBackbone.create(task.target.train.shape) : backbone;
        const label = `${taskLabel} · ${methodLabel} · seed ${seed}`;
        progress.trial(label, index++, total);
        const started = Date.now();
        const base = {
          suite: suite.id,
          run,
          task: taskLabel,
          method: methodLabel,
          seed,
          taskOptions: { ...options },
          backend: backend.name,
          ...(trained ? { engine: chooseEngine(method, trained, opts.engine) } : {}),
          backbone: suiteBackboneName(trained, suite),
        };
        const upstream = taskError ?? (method.needs.pretrainedBackbone ? pretrainError : undefined);
        if (upstream || !task || !trained) {
          record({
            ...base,
            status: 'failed',
            metrics: {},
            durationMs: 0,
            error: upstream ?? 'task unavailable',
            config,
          });
          continue;
        }
        // Only the trial itself may fail it: recording and progress run outside
        // this try, so an ok trial can never be recorded a second time as failed.
        let out: Awaited<ReturnType<typeof runTrial>> | undefined;
        let trialError: unknown;
        try {
          out = await runTrial({
            task,
            method,
            config,
            backbone: trained,
            seed,
            ...(opts.engine ? { engine: opts.engine } : {}),
            ...(method.needs.pretrainedBackbone && pretrained ? { pretrained } : {}),
            ...(method.needs.pretrainedBackbone && sourceHead ? { sourceHead } : {}),
            onEpoch: (e) => progress.epoch('train', e.epoch, e.epochs),
          });
        } catch (err) {
          trialError = err;
        }
        if (out) {
          record({
            ...base,
            status: 'ok',
            metrics: {
              ...out.metrics,
              ...(method.needs.pretrainedBackbone ? pretrainMetrics : {}),
            },
            ...(method.needs.pretrainedBackbone && pretrainTimings
              ? { timings: pretrainTimings }
              : {}),
            durationMs: Date.now() - started,
            config,
            curve: out.curve,
            timestamp: new Date().toISOString(),
          });
        } else {
          record({
            ...base,
            status: 'failed',
            metrics: {},
            durationMs: Date.now() - started,
            error: (trialError as Error).message,
            config,
            timestamp: new Date().toISOString(),
          });
        }
      }
      disposeParams(pretrained);
      disposeParams(sourceHead);
    }
  }
  progress.close();
  return { records: log.records, backend, resultsPath: log.path };
}

function suiteBackboneName(
  backbone: { spec: { name: string } } | undefined,
  suite: SuiteSpec,
): string {
  return backbone?.spec.name ?? suite.backbone;
}
