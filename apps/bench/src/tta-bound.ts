import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { createRng, disposeParams, type Params } from '@transferlab/core';
import { type Dataset, subset, type TaskSpec, toTensors } from '@transferlab/datasets';
import { type TtaSetting, targetLossReached, ttaBound } from '@transferlab/evaluation';
import type { Engine } from '@transferlab/methods';
import type { Backbone } from '@transferlab/models';
import { z } from 'zod';
import { type ExecuteOptions, type ExecuteResult, executeSuite } from './execute.js';
import { loadOrPretrain } from './pretrain-cache.js';
import { formatTable } from './report.js';
import type { TrialRecord } from './results.js';
import { checkTaskOptions, pretrainSchema, type Registries } from './run-suite.js';
import { defaultPretrainConfig, type PretrainConfig } from './runner.js';
import {
  failedOutcome,
  type PlannedUnit,
  SUITE_KIND_SPECIFICATION_VERSION,
  type SuiteKind,
  type UnitContext,
} from './suite-kind.js';

/**
 * The Task Transfer Analysis bound (Mehra, Zhang, Hamm 2023) on real pairs:
 * a backbone pre-trained on the source, frozen; the bound on the target loss
 * of a last-layer fine-tune, computed from source and target features, with
 * nothing / only the affine map / everything learned — beside the target
 * cross-entropy a Lipschitz-penalised target head actually reaches.
 */
export interface TtaBoundSuite {
  readonly kind: 'tta-bound';
  readonly id: string;
  readonly description: string;
  readonly backbone: string;
  readonly seeds: number;
  readonly pairs: readonly {
    task: string;
    options?: Record<string, unknown>;
    /** Source class j → target class labelMap[j]: the fixed B of settings 'none' and 'A'. */
    labelMap: readonly number[];
  }[];
  readonly settings: readonly TtaSetting[];
  /** Source and target-test points used (seeded subsamples). */
  readonly sourcePoints: number;
  readonly targetTestPoints: number;
  readonly tau: number;
  /** How τ is set (see ttaBound): 'fixed' is the paper's (the option τ); 'max' also measures it on the transformed data. */
  readonly lipschitz?: 'fixed' | 'measured' | 'max' | 'global';
  readonly epochs: number;
  readonly pretrain?: Partial<PretrainConfig>;
}

function featuresOf(
  backbone: Backbone,
  params: Params,
  ds: Dataset,
): { features: { data: Float32Array; rows: number; cols: number }; labels: Int32Array } {
  return tf.tidy(() => {
    const { x } = toTensors(ds);
    const f = tf.reshape(backbone.apply(params, x).features, [ds.y.length, -1]);
    return {
      features: {
        data: f.dataSync() as Float32Array,
        rows: ds.y.length,
        cols: f.shape[1] as number,
      },
      labels: ds.y,
    };
  });
}

function sample(ds: Dataset, n: number, seed: number, label: string): Dataset {
  if (ds.y.length <= n) return ds;
  return subset(ds, createRng(seed).derive(label).permutation(ds.y.length).subarray(0, n));
}

export const ttaBoundSuiteSchema = z.strictObject({
  kind: z.literal('tta-bound'),
  id: z.string().min(1),
  description: z.string(),
  backbone: z.string().min(1),
  seeds: z.number().int().positive(),
  pairs: z
    .array(
      z.strictObject({
        task: z.string().min(1),
        options: z.record(z.string(), z.unknown()).optional(),
        labelMap: z.array(z.number().int().min(0)).min(1),
      }),
    )
    .min(1),
  settings: z.array(z.enum(['none', 'A', 'all'])).min(1),
  sourcePoints: z.number().int().positive(),
  targetTestPoints: z.number().int().positive(),
  tau: z.number().positive(),
  lipschitz: z.enum(['fixed', 'measured', 'max', 'global']).optional(),
  epochs: z.number().int().positive(),
  // The transfer suites' pre-training overrides, refused keys and all.
  pretrain: pretrainSchema,
}) satisfies z.ZodType<TtaBoundSuite>;

/** The suite's ids against the registries; errors name the entry's path. */
function checkTtaBound(suite: TtaBoundSuite, reg: Registries): void {
  try {
    reg.backbones.get(suite.backbone);
  } catch (err) {
    throw new Error(`backbone: ${(err as Error).message}`);
  }
  suite.pairs.forEach((p, i) => {
    let spec: TaskSpec;
    try {
      spec = reg.tasks.get(p.task);
    } catch (err) {
      throw new Error(`pairs[${i}].task: ${(err as Error).message}`);
    }
    try {
      checkTaskOptions(suite.id, spec, p.options);
    } catch (err) {
      throw new Error(`pairs[${i}].options: ${(err as Error).message}`);
    }
    // Records name a pair by its task id, so a task may appear once.
    const first = suite.pairs.findIndex((q) => q.task === p.task);
    if (first !== i) throw new Error(`pairs[${i}].task: "${p.task}" is also pairs[${first}]`);
  });
  const twice = suite.settings.findIndex((s, i) => suite.settings.indexOf(s) !== i);
  if (twice >= 0) throw new Error(`settings[${twice}]: "${suite.settings[twice]}" appears twice`);
}

/**
 * One unit per (seed, pair): the pair's source pre-training and frozen
 * features serve every setting. The bound and the loss reached depend on the
 * pair, the sizes, τ and pre-training; the tfjs backend computes the
 * features and the engine pre-trains.
 */
function planTtaBound(
  suite: TtaBoundSuite,
  seeds: readonly number[],
  ctx: { engine?: Engine; backend?: string },
): PlannedUnit[] {
  const units: PlannedUnit[] = [];
  for (const seed of seeds)
    for (const pair of suite.pairs)
      units.push({
        id: `${pair.task} · seed ${seed}`,
        seed,
        trials: suite.settings.map((setting) => ({
          task: pair.task,
          method: setting,
          seed,
          determinants: {
            pair: { task: pair.task, options: pair.options ?? {}, labelMap: pair.labelMap },
            backbone: suite.backbone,
            sourcePoints: suite.sourcePoints,
            targetTestPoints: suite.targetTestPoints,
            tau: suite.tau,
            lipschitz: suite.lipschitz ?? null,
            // 'none' learns nothing: its epochs do not matter.
            epochs: setting === 'none' ? 0 : suite.epochs,
            pretrain: { ...defaultPretrainConfig, ...suite.pretrain },
            engine: ctx.engine ?? 'default',
            backend: ctx.backend ?? 'default',
          },
        })),
      });
  return units;
}

async function runTtaBoundUnit(
  suite: TtaBoundSuite,
  unit: PlannedUnit,
  ctx: UnitContext,
): Promise<void> {
  const { seed } = unit;
  const { progress } = ctx;
  const taskId = unit.trials[0]?.task;
  const pair = suite.pairs.find((p) => p.task === taskId);
  if (!pair) throw new Error(`unit ${unit.id}: no pair "${taskId}" in suite "${suite.id}"`);
  const pending = suite.settings.filter((s) => !ctx.isDone(pair.task, s));
  const spec = ctx.registries.tasks.get(pair.task);
  const factory = ctx.registries.backbones.get(suite.backbone);
  // Building, pre-training or featurising fails every setting alike: thrown, so
  // executeSuite records each pending setting failed with the reason.
  const task = await spec.build({ ...pair.options, seed });
  const backbone = factory.create(task.target.train.shape);
  progress.trial(`${pair.task} pre-training (seed ${seed})`, 0, pending.length);
  const pretrained = await loadOrPretrain({
    sourceKey: { task: pair.task, options: pair.options ?? {} },
    source: task.source.train,
    backbone,
    seed,
    config: { ...defaultPretrainConfig, ...suite.pretrain },
    ...(ctx.engine ? { engine: ctx.engine } : {}),
    ...(ctx.diskCache ? { cacheDir: join(ctx.outDir, 'cache') } : {}),
    onEpoch: (e) => progress.epoch('pretrain', e.epoch, e.epochs),
  });
  try {
    const params = pretrained.params;
    const source = {
      train: featuresOf(
        backbone,
        params,
        sample(task.source.train, suite.sourcePoints, seed, 'source'),
      ),
    };
    const target = {
      train: featuresOf(backbone, params, task.target.train),
      test: featuresOf(
        backbone,
        params,
        sample(task.target.test, suite.targetTestPoints, seed, 'target-test'),
      ),
    };
    const reached = targetLossReached(target, { tau: suite.tau });
    for (const [i, setting] of pending.entries()) {
      progress.trial(`${pair.task} · ${setting} · seed ${seed}`, i, pending.length);
      const t0 = Date.now();
      const base = { task: pair.task, method: setting, seed, backend: ctx.backend };
      try {
        const result = ttaBound(source, target, {
          setting,
          tau: suite.tau,
          ...(suite.lipschitz ? { lipschitz: suite.lipschitz } : {}),
          labelMap: pair.labelMap,
          epochs: setting === 'none' ? 0 : suite.epochs,
          seed,
        });
        ctx.record({
          ...base,
          status: 'ok',
          metrics: {
            predicted_bound: result.bound,
            predicted_weighted_source_loss: result.terms.weightedSourceLoss,
            predicted_conditional_entropy: result.terms.conditionalEntropy,
            predicted_wasserstein: result.terms.wasserstein,
            predicted_lipschitz: result.terms.lipschitz,
            measured_target_loss: reached.loss,
            measured_target_loss_se: reached.lossSe,
            measured_target_acc: reached.accuracy,
            measured_target_acc_se: reached.accuracySe,
          },
          durationMs: Date.now() - t0,
          timestamp: new Date().toISOString(),
        });
      } catch (err) {
        ctx.record(failedOutcome(base, err, t0));
      }
    }
  } finally {
    disposeParams(pretrained.params);
    disposeParams(pretrained.sourceHead);
  }
}

export const ttaBoundKind: SuiteKind<TtaBoundSuite> = {
  specificationVersion: SUITE_KIND_SPECIFICATION_VERSION,
  id: 'tta-bound',
  description:
    'The Task Transfer Analysis bound on frozen source-pretrained features beside the target loss a Lipschitz-penalised head reaches, per pair and setting.',
  schema: ttaBoundSuiteSchema,
  firstSeed: true,
  check: checkTtaBound,
  plan: planTtaBound,
  runUnit: runTtaBoundUnit,
  summarize(records, opts) {
    const extra = opts.metric ? formatTable(records, opts.metric, false) : '';
    return [formatTtaTable(records), extra].filter((t) => t !== '').join('\n\n');
  },
};

/** Run a tta-bound suite (see `executeSuite`: checks first, resume, one record per trial as it ends). */
export function runTtaBound(
  opts: Omit<ExecuteOptions, 'kind' | 'suite'> & { suite: TtaBoundSuite },
): Promise<ExecuteResult> {
  const { suite, ...rest } = opts;
  return executeSuite({ kind: ttaBoundKind, suite, ...rest });
}

/** Bound per setting beside the loss reached, seed-averaged. */
export function formatTtaTable(records: readonly TrialRecord[]): string {
  const ok = records.filter((r) => r.status === 'ok' && r.metrics.predicted_bound !== undefined);
  const tasks = [...new Set(ok.map((r) => r.task))];
  const settings = [...new Set(ok.map((r) => r.method))];
  const mean = (rs: TrialRecord[], k: string) =>
    rs.reduce((a, r) => a + (r.metrics[k] as number), 0) / rs.length;
  const lines = [
    'Task Transfer Analysis bound on the target cross-entropy (mean over seeds) beside the loss a penalised target head reaches (± its standard error over the test examples)',
  ];
  lines.push(
    `| pair | reached | ${settings.map((s) => `bound (${s})`).join(' | ')} |`,
    `|---|---|${settings.map(() => '---').join('|')}|`,
  );
  for (const task of tasks) {
    const rs = ok.filter((r) => r.task === task);
    const cells = settings.map((s) => {
      const x = rs.filter((r) => r.method === s);
      return x.length ? mean(x, 'predicted_bound').toFixed(3) : '';
    });
    // Every setting's record carries its seed's reached loss: take each seed's once. The mean
    // over seeds has standard error √(Σ se²)/k (older records have no se: none shown).
    const perSeed = [...new Map(rs.map((r) => [r.seed, r.metrics])).values()];
    const reached = perSeed.reduce((a, m) => a + (m.measured_target_loss as number), 0);
    const ses = perSeed.map((m) => m.measured_target_loss_se);
    const se = ses.every((v) => v !== undefined)
      ? ` ± ${(Math.sqrt(ses.reduce((a, v) => a + (v as number) ** 2, 0)) / ses.length).toFixed(3)}`
      : '';
    lines.push(
      `| ${task} | ${(reached / perSeed.length).toFixed(3)}${se} | ${cells.join(' | ')} |`,
    );
  }
  return lines.join('\n');
}
