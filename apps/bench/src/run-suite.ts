import { join } from 'node:path';
import { disposeParams, type Params, type Registry } from '@transferlab/core';
import {
  createTaskRegistry,
  type TaskBuildOptions,
  type TaskPair,
  type TaskSpec,
} from '@transferlab/datasets';
import { type AnyTransferMethod, createMethodRegistry, type Engine } from '@transferlab/methods';
import { type BackboneFactory, createBackboneRegistry } from '@transferlab/models';
import { z } from 'zod';
import { executeSuite } from './execute.js';
import { loadOrPretrain } from './pretrain-cache.js';
import type { Progress } from './progress.js';
import { formatLambdaTable, formatPairedTable, formatTable } from './report.js';
import type { TrialRecord } from './results.js';
import { chooseEngine, defaultPretrainConfig, type PretrainConfig, runTrial } from './runner.js';
import {
  failedOutcome,
  type PlannedUnit,
  SUITE_KIND_SPECIFICATION_VERSION,
  type SuiteKind,
  type UnitContext,
} from './suite-kind.js';

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

/** A transfer suite: every method on every task pair, over seeds. */
export interface SuiteSpec {
  readonly kind?: 'transfer';
  readonly id: string;
  readonly description: string;
  /** Backbone id (see `pnpm bench list`). */
  readonly backbone: string;
  /** Seeds run when `--seeds` is not given. */
  readonly seeds: number;
  readonly tasks: readonly {
    id: string;
    /** Name in results and tables (default: the task id); needed when one task appears with several option sets (a sweep). */
    label?: string;
    options?: Omit<Partial<TaskBuildOptions>, 'seed'> & Record<string, unknown>;
  }[];
  readonly methods: readonly {
    id: string;
    /** Name in results and tables (default: the method id); needed for several variants of one method. */
    label?: string;
    options?: Record<string, unknown>;
    /**
     * Backbone id of the network this method trains, when it is not the
     * suite's: e.g. scratch on the target architecture of a suite whose
     * source network is another. Only for methods that need no pre-trained
     * backbone.
     */
    backbone?: string;
    /** A method plugin: the module (path relative to the suite file, or a package) that exports it. */
    from?: string;
  }[];
  readonly pretrain?: Partial<PretrainConfig>;
}

const options = z.record(z.string(), z.unknown());

/** Source pre-training settings, as every suite kind that pre-trains takes them. */
export const pretrainSchema = z
  .strictObject({
    epochs: z.number().int().positive().optional(),
    batchSize: z.number().int().positive().optional(),
    optimizer: z.enum(['adam', 'sgd']).optional(),
    lr: z.number().positive().optional(),
    momentum: z.number().min(0).optional(),
    weightDecay: z.number().min(0).optional(),
    schedule: z.enum(['constant', 'cosine']).optional(),
    maxExamples: z.number().int().positive().optional(),
  })
  .optional();

export const transferSuiteSchema = z.strictObject({
  kind: z.literal('transfer').optional(),
  id: z.string().min(1),
  description: z.string(),
  backbone: z.string().min(1),
  seeds: z.number().int().positive(),
  tasks: z
    .array(
      z.strictObject({
        id: z.string().min(1),
        label: z.string().min(1).optional(),
        options: options.optional(),
      }),
    )
    .min(1),
  methods: z
    .array(
      z.strictObject({
        id: z.string().min(1),
        label: z.string().min(1).optional(),
        options: options.optional(),
        backbone: z.string().min(1).optional(),
        from: z.string().min(1).optional(),
      }),
    )
    .min(1),
  pretrain: pretrainSchema,
}) satisfies z.ZodType<SuiteSpec>;

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

/** An error thrown at a path of the suite: the path goes in front of its message. */
function at(path: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    const e = err as Error;
    throw new Error(`${path}: ${e.message}`);
  }
}

/** The suite's entries resolved against the registries; throws, with the entry's path, on anything unknown. */
function resolveSuite(suite: SuiteSpec, reg: Registries) {
  let backboneFactory: BackboneFactory | undefined;
  at('backbone', () => {
    backboneFactory = reg.backbones.get(suite.backbone);
  });
  const tasks = suite.tasks.map((t, i) => {
    let spec: TaskSpec | undefined;
    at(`tasks[${i}]`, () => {
      spec = reg.tasks.get(t.id);
    });
    at(`tasks[${i}].options`, () => checkTaskOptions(suite.id, spec as TaskSpec, t.options));
    return { spec: spec as TaskSpec, options: t.options ?? {}, label: t.label ?? t.id };
  });
  const labels = tasks.map((t) => t.label);
  const repeated = labels.find((l, i) => labels.indexOf(l) !== i);
  if (repeated)
    throw new Error(
      `suite "${suite.id}": task "${repeated}" appears twice; give each entry its own label`,
    );
  const methods = suite.methods.map((m, i) => {
    let method: AnyTransferMethod | undefined;
    let ownBackbone: BackboneFactory | undefined;
    let config: (Record<string, unknown> & { epochs: number; batchSize: number }) | undefined;
    at(`methods[${i}]`, () => {
      method = reg.methods.get(m.id);
      ownBackbone = m.backbone !== undefined ? reg.backbones.get(m.backbone) : undefined;
    });
    const found = method as AnyTransferMethod;
    if (ownBackbone && found.needs.pretrainedBackbone && m.backbone !== suite.backbone) {
      throw new Error(
        `suite "${suite.id}": method "${m.label ?? m.id}" starts from the pre-trained "${suite.backbone}" backbone and cannot train backbone "${m.backbone}"`,
      );
    }
    at(`methods[${i}].options`, () => {
      config = found.validate(m.options ?? {}) as typeof config;
    });
    return {
      method: found,
      ownBackbone,
      label: m.label ?? m.id,
      config: config as Record<string, unknown> & { epochs: number; batchSize: number },
    };
  });
  const methodLabels = methods.map((m) => m.label);
  const twice = methodLabels.find((l, i) => methodLabels.indexOf(l) !== i);
  if (twice)
    throw new Error(
      `suite "${suite.id}": method "${twice}" appears twice; give each entry its own label`,
    );
  const pretrainConfig: PretrainConfig = { ...defaultPretrainConfig, ...suite.pretrain };
  return { backboneFactory: backboneFactory as BackboneFactory, tasks, methods, pretrainConfig };
}

/**
 * Run one (seed, task) unit: build the task, pre-train the source once for
 * the methods that need it (cached on disk), then train and evaluate each
 * method not already done. A failing trial is recorded as failed and the
 * unit goes on.
 */
async function runTransferUnit(suite: SuiteSpec, unit: PlannedUnit, ctx: UnitContext) {
  const reg = ctx.registries;
  const { backboneFactory, tasks, methods, pretrainConfig } = resolveSuite(suite, reg);
  const taskLabel = unit.trials[0]?.task;
  const entry = tasks.find((t) => t.label === taskLabel);
  if (!entry) throw new Error(`unit ${unit.id}: no task "${taskLabel}" in suite "${suite.id}"`);
  const { spec, options } = entry;
  const { seed } = unit;
  const { progress } = ctx;
  const pending = methods.filter((m) => !ctx.isDone(taskLabel as string, m.label));
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
  const needsPretrain = pending.some((m) => m.method.needs.pretrainedBackbone);
  const backbone = task ? backboneFactory.create(task.target.train.shape) : undefined;
  try {
    if (task && backbone && needsPretrain) {
      progress.trial(`${entry.label} pre-training (seed ${seed})`, 0, pending.length);
      try {
        const out = await loadOrPretrain({
          sourceKey: { task: spec.id, options },
          source: task.source.train,
          backbone,
          seed,
          config: pretrainConfig,
          ...(ctx.engine ? { engine: ctx.engine } : {}),
          ...(ctx.diskCache ? { cacheDir: join(ctx.outDir, 'cache') } : {}),
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
    for (const [i, { method, config, label: methodLabel, ownBackbone }] of pending.entries()) {
      const trained = task && ownBackbone ? ownBackbone.create(task.target.train.shape) : backbone;
      progress.trial(`${entry.label} · ${methodLabel} · seed ${seed}`, i, pending.length);
      const started = Date.now();
      const base = {
        task: entry.label,
        method: methodLabel,
        seed,
        taskOptions: { ...options },
        backend: ctx.backend,
        ...(trained ? { engine: chooseEngine(method, trained, ctx.engine) } : {}),
        backbone: trained?.spec.name ?? suite.backbone,
        config,
      };
      const upstream = taskError ?? (method.needs.pretrainedBackbone ? pretrainError : undefined);
      if (upstream || !task || !trained) {
        ctx.record(failedOutcome(base, upstream ?? 'task unavailable'));
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
          ...(ctx.engine ? { engine: ctx.engine } : {}),
          ...(method.needs.pretrainedBackbone && pretrained ? { pretrained } : {}),
          ...(method.needs.pretrainedBackbone && sourceHead ? { sourceHead } : {}),
          onEpoch: (e) => progress.epoch('train', e.epoch, e.epochs),
        });
      } catch (err) {
        trialError = err;
      }
      ctx.record(
        out
          ? {
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
              curve: out.curve,
              timestamp: new Date().toISOString(),
            }
          : failedOutcome(base, trialError, started),
      );
    }
  } finally {
    disposeParams(pretrained);
    disposeParams(sourceHead);
  }
}

/** The transfer tables: per-method means, paired gains against scratch (else fine-tune), L2T-ww's λ. */
export function summarizeTransfer(records: readonly TrialRecord[], metric?: string): string {
  const baseline = records.some((r) => r.method === 'scratch') ? 'scratch' : 'fine-tune';
  const paired = formatPairedTable(records, baseline, metric);
  const lambdas = formatLambdaTable(records);
  return `${formatTable(records, metric)}${paired ? `\n\n${paired}` : ''}${lambdas ? `\n\n${lambdas}` : ''}`;
}

export const transferKind: SuiteKind<SuiteSpec> = {
  specificationVersion: SUITE_KIND_SPECIFICATION_VERSION,
  id: 'transfer',
  description:
    'Every method on every task pair over seeds: target accuracy, paired differences against scratch (or fine-tune).',
  schema: transferSuiteSchema,
  firstSeed: true,
  check(suite, registries) {
    resolveSuite(suite, registries);
  },
  plan(suite, seeds, ctx) {
    const { methods, pretrainConfig } = resolveSuite(suite, ctx.registries);
    const units: PlannedUnit[] = [];
    for (const seed of seeds)
      for (const t of suite.tasks) {
        const label = t.label ?? t.id;
        units.push({
          id: `${label} · seed ${seed}`,
          seed,
          trials: methods.map((m, i) => ({
            task: label,
            method: m.label,
            seed,
            // The validated config: a changed default changes the key too.
            determinants: {
              task: { id: t.id, options: t.options ?? {} },
              method: {
                id: suite.methods[i]?.id,
                config: m.config,
                backbone: suite.methods[i]?.backbone ?? null,
              },
              backbone: suite.backbone,
              pretrain: m.method.needs.pretrainedBackbone ? pretrainConfig : null,
              engine: ctx.engine ?? 'default',
              backend: ctx.backend ?? 'default',
            },
          })),
        });
      }
    return units;
  },
  runUnit: runTransferUnit,
  summarize: (records, opts) => summarizeTransfer(records, opts.metric),
};

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
  /** Start a new run rather than resume one of this suite in `outDir`. */
  fresh?: boolean;
  jobs?: number;
}

/**
 * Run every (seed, task, method) trial of a transfer suite (see
 * `executeSuite`: checks first, resume, one record per trial appended as it
 * ends, failures recorded and the suite goes on).
 */
export function runSuite(opts: RunSuiteOptions) {
  const { suite, ...rest } = opts;
  return executeSuite({ kind: transferKind, suite, ...rest });
}
