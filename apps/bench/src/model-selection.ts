import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { disposeParams, type Params } from '@transferlab/core';
import { type Dataset, toTensors } from '@transferlab/datasets';
import { hScore, kendallTau, leep, logME, meanCI, nce } from '@transferlab/evaluation';
import { type Engine, fineTune } from '@transferlab/methods';
import { type Backbone, linearHead } from '@transferlab/models';
import { z } from 'zod';
import { type ExecuteOptions, type ExecuteResult, executeSuite } from './execute.js';
import { loadOrPretrain } from './pretrain-cache.js';
import { formatTable } from './report.js';
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
 * Model selection: several source models (backbones pre-trained on
 * different sources) are scored on one target by transferability estimators
 * computed on the labelled target training set, then each is fine-tuned on
 * the target; the question is whether the scores rank the sources as
 * fine-tuning does (Kendall's τ per estimator).
 */
export interface ModelSelectionSuite {
  readonly kind: 'model-selection';
  readonly id: string;
  readonly description: string;
  readonly backbone: string;
  readonly seeds: number;
  /** Targets: task id (its target splits are used) and build options. */
  readonly targets: readonly { id: string; options?: Record<string, unknown> }[];
  /** Candidate sources: the `source.train` of a task, with optional pre-training overrides. */
  readonly candidates: readonly {
    label: string;
    task: string;
    options?: Record<string, unknown>;
    pretrain?: Partial<PretrainConfig>;
  }[];
  readonly pretrain?: Partial<PretrainConfig>;
  readonly fineTune?: Record<string, unknown>;
}

export const ESTIMATORS = ['leep', 'nce', 'logme', 'hscore'] as const;

/** Features and source-class probabilities of a dataset under a pre-trained source model. */
function sourceOutputs(
  backbone: Backbone,
  params: Params,
  sourceHead: Params,
  sourceClasses: number,
  ds: Dataset,
): { features: Float32Array; probs: Float32Array; dim: number } {
  const head = linearHead(backbone.featureDim, sourceClasses, 'source_head');
  return tf.tidy(() => {
    const { x } = toTensors(ds);
    const features = tf.reshape(backbone.apply(params, x).features, [ds.y.length, -1]);
    const probs = tf.softmax(head.apply(sourceHead, features));
    return {
      features: features.dataSync() as Float32Array,
      probs: probs.dataSync() as Float32Array,
      dim: features.shape[1] as number,
    };
  });
}

const options = z.record(z.string(), z.unknown());

export const modelSelectionSuiteSchema = z.strictObject({
  kind: z.literal('model-selection'),
  id: z.string().min(1),
  description: z.string(),
  backbone: z.string().min(1),
  seeds: z.number().int().positive(),
  targets: z.array(z.strictObject({ id: z.string().min(1), options: options.optional() })).min(1),
  candidates: z
    .array(
      z.strictObject({
        label: z.string().min(1),
        task: z.string().min(1),
        options: options.optional(),
        pretrain: pretrainSchema,
      }),
    )
    .min(1),
  pretrain: pretrainSchema,
  fineTune: options.optional(),
}) satisfies z.ZodType<ModelSelectionSuite>;

/**
 * A candidate's method label. Every candidate is fine-tuned, and a trial is
 * one (task, method, seed), so the source goes into the label; the record
 * keeps `source` on its own as well, which the tables read.
 */
export const candidateMethod = (label: string) => `fine-tune ← ${label}`;

/** Path-prefixed: an error at `path` (e.g. `targets[1].id: Unknown task …`). */
function at<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}

/** The suite against the registries, before any work; returns the fine-tune config. */
function resolveModelSelection(suite: ModelSelectionSuite, reg: Registries) {
  at('backbone', () => reg.backbones.get(suite.backbone));
  suite.targets.forEach((t, i) => {
    const spec = at(`targets[${i}].id`, () => reg.tasks.get(t.id));
    at(`targets[${i}].options`, () => checkTaskOptions(suite.id, spec, t.options));
    // Records name a target by its task id: one entry per task.
    const first = suite.targets.findIndex((o) => o.id === t.id);
    if (first !== i) throw new Error(`targets[${i}].id: "${t.id}" is also targets[${first}]`);
  });
  suite.candidates.forEach((c, i) => {
    const spec = at(`candidates[${i}].task`, () => reg.tasks.get(c.task));
    at(`candidates[${i}].options`, () => checkTaskOptions(suite.id, spec, c.options));
    const first = suite.candidates.findIndex((o) => o.label === c.label);
    if (first !== i)
      throw new Error(`candidates[${i}].label: "${c.label}" is also candidates[${first}]`);
  });
  return at('fineTune', () => fineTune.validate(suite.fineTune ?? {}));
}

/**
 * One unit per (seed, target): the target's splits and backbone serve every
 * candidate (each candidate's pre-training is cached on disk, so other
 * targets reuse it). A trial depends on its target, its source and that
 * source's pre-training, and fine-tuning — not on the other candidates.
 */
function planModelSelection(
  suite: ModelSelectionSuite,
  seeds: readonly number[],
  ctx: { engine?: Engine; backend?: string; registries: Registries },
): PlannedUnit[] {
  const ftConfig = resolveModelSelection(suite, ctx.registries);
  const units: PlannedUnit[] = [];
  for (const seed of seeds)
    for (const target of suite.targets)
      units.push({
        id: `${target.id} · seed ${seed}`,
        seed,
        trials: suite.candidates.map((c) => ({
          task: target.id,
          method: candidateMethod(c.label),
          seed,
          determinants: {
            target: { id: target.id, options: target.options ?? {} },
            source: {
              task: c.task,
              options: c.options ?? {},
              pretrain: { ...defaultPretrainConfig, ...suite.pretrain, ...c.pretrain },
            },
            backbone: suite.backbone,
            fineTune: ftConfig,
            engine: ctx.engine ?? 'default',
            backend: ctx.backend ?? 'default',
          },
        })),
      });
  return units;
}

async function runModelSelectionUnit(
  suite: ModelSelectionSuite,
  unit: PlannedUnit,
  ctx: UnitContext,
): Promise<void> {
  const reg = ctx.registries;
  const { seed } = unit;
  const { progress } = ctx;
  const targetId = unit.trials[0]?.task as string;
  const target = suite.targets.find((t) => t.id === targetId);
  if (!target) throw new Error(`unit ${unit.id}: no target "${targetId}" in suite "${suite.id}"`);
  const ftConfig = fineTune.validate(suite.fineTune ?? {});
  const pending = suite.candidates.filter((c) => !ctx.isDone(targetId, candidateMethod(c.label)));
  // Without the target's data no candidate can run: thrown, executeSuite fails them all.
  const pair = await reg.tasks.get(target.id).build({ ...target.options, seed });
  const backbone = reg.backbones.get(suite.backbone).create(pair.target.train.shape);
  for (const [i, candidate] of pending.entries()) {
    progress.trial(`${target.id} ← ${candidate.label} · seed ${seed}`, i, pending.length);
    const started = Date.now();
    const base = {
      task: target.id,
      method: candidateMethod(candidate.label),
      source: candidate.label,
      seed,
      backend: ctx.backend,
      backbone: backbone.spec.name,
    };
    let pretrained: Awaited<ReturnType<typeof loadOrPretrain>> | undefined;
    try {
      const sourcePair = await reg.tasks.get(candidate.task).build({ ...candidate.options, seed });
      if (sourcePair.source.train.shape.join() !== pair.target.train.shape.join()) {
        throw new Error(
          `source "${candidate.label}" has inputs [${sourcePair.source.train.shape}] but the target has [${pair.target.train.shape}]`,
        );
      }
      pretrained = await loadOrPretrain({
        sourceKey: { task: candidate.task, options: candidate.options ?? {} },
        source: sourcePair.source.train,
        backbone,
        seed,
        config: { ...defaultPretrainConfig, ...suite.pretrain, ...candidate.pretrain },
        ...(ctx.engine ? { engine: ctx.engine } : {}),
        ...(ctx.diskCache ? { cacheDir: join(ctx.outDir, 'cache') } : {}),
        onEpoch: (e) => progress.epoch('pretrain', e.epoch, e.epochs),
      });
      const train = pair.target.train;
      const sourceClasses = sourcePair.source.train.numClasses;
      const out = sourceOutputs(
        backbone,
        pretrained.params,
        pretrained.sourceHead,
        sourceClasses,
        train,
      );
      const rows = (data: Float32Array, width: number) => ({
        data,
        rows: train.y.length,
        cols: width,
      });
      const hard = Int32Array.from({ length: train.y.length }, (_, i) => {
        let best = 0;
        for (let k = 1; k < sourceClasses; k++) {
          if (
            (out.probs[i * sourceClasses + k] as number) >
            (out.probs[i * sourceClasses + best] as number)
          )
            best = k;
        }
        return best;
      });
      const predicted = {
        predicted_leep: leep(rows(out.probs, sourceClasses), train.y),
        predicted_nce: nce(hard, train.y),
        predicted_logme: logME(rows(out.features, out.dim), train.y),
        predicted_hscore: hScore(rows(out.features, out.dim), train.y),
      };
      const trial = await runTrial({
        task: pair,
        method: fineTune,
        config: ftConfig,
        backbone,
        seed,
        pretrained: pretrained.params,
        ...(ctx.engine ? { engine: ctx.engine } : {}),
        onEpoch: (e) => progress.epoch('fine-tune', e.epoch, e.epochs),
      });
      ctx.record({
        ...base,
        engine: trial.engine,
        status: 'ok',
        metrics: {
          measured_target_test_acc: trial.metrics.target_test_acc as number,
          ...predicted,
          source_train_acc: pretrained.sourceTrainAcc,
        },
        durationMs: Date.now() - started,
        timestamp: new Date().toISOString(),
      });
    } catch (err) {
      ctx.record(failedOutcome(base, err, started));
    } finally {
      if (pretrained) {
        disposeParams(pretrained.params);
        disposeParams(pretrained.sourceHead);
      }
    }
  }
}

/** Fine-tuning accuracy per target and source (methods named `← source`), then the rank correlations. */
export function summarizeModelSelection(
  records: readonly TrialRecord[],
  metric = 'measured_target_test_acc',
): string {
  const bySource = records.map((r) => ({ ...r, method: `← ${r.source ?? r.method}` }));
  return `${formatTable(bySource, metric)}\n\n${formatRankTable(records)}`;
}

export const modelSelectionKind: SuiteKind<ModelSelectionSuite> = {
  specificationVersion: SUITE_KIND_SPECIFICATION_VERSION,
  id: 'model-selection',
  description:
    "Source models ranked on a target by LEEP, NCE, LogME and H-score beside fine-tuning accuracy; Kendall's τ per estimator.",
  schema: modelSelectionSuiteSchema,
  firstSeed: true,
  check(suite, registries) {
    resolveModelSelection(suite, registries);
  },
  plan: planModelSelection,
  runUnit: runModelSelectionUnit,
  summarize: (records, opts) => summarizeModelSelection(records, opts.metric),
};

/** Run a model-selection suite (see `executeSuite`: checks first, resume, one record per trial as it ends). */
export function runModelSelection(
  opts: Omit<ExecuteOptions, 'kind' | 'suite'> & { suite: ModelSelectionSuite },
): Promise<ExecuteResult> {
  const { suite, ...rest } = opts;
  return executeSuite({ kind: modelSelectionKind, suite, ...rest });
}

/**
 * Kendall's τ between each estimator's scores and the measured fine-tuning
 * accuracy across sources, per (target, seed); then mean ± 95% CI over seeds.
 */
export function rankCorrelations(
  records: readonly TrialRecord[],
): { task: string; estimator: string; taus: number[] }[] {
  const ok = records.filter((r) => r.status === 'ok' && r.source !== undefined);
  const out: { task: string; estimator: string; taus: number[] }[] = [];
  for (const task of [...new Set(ok.map((r) => r.task))]) {
    for (const estimator of ESTIMATORS) {
      const taus: number[] = [];
      for (const seed of [...new Set(ok.filter((r) => r.task === task).map((r) => r.seed))]) {
        const group = ok.filter((r) => r.task === task && r.seed === seed);
        if (group.length < 3) continue;
        const measured = group.map((r) => r.metrics.measured_target_test_acc as number);
        const predicted = group.map((r) => r.metrics[`predicted_${estimator}`] as number);
        if (new Set(measured).size < 2 || new Set(predicted).size < 2) continue;
        taus.push(kendallTau(predicted, measured));
      }
      out.push({ task, estimator, taus });
    }
  }
  return out;
}

export function formatRankTable(records: readonly TrialRecord[]): string {
  const rows = rankCorrelations(records);
  const lines = [
    "Kendall's τ between estimator and fine-tuning accuracy across sources (mean ± 95% CI over seeds)",
  ];
  lines.push('| target | estimator | τ | seeds |', '|---|---|---|---|');
  for (const r of rows) {
    if (r.taus.length === 0) {
      lines.push(`| ${r.task} | ${r.estimator} | n/a | 0 |`);
      continue;
    }
    const s = meanCI(r.taus);
    lines.push(
      `| ${r.task} | ${r.estimator} | ${s.mean.toFixed(2)}${Number.isNaN(s.ci95) ? '' : ` ± ${s.ci95.toFixed(2)}`} | ${s.n} |`,
    );
  }
  return lines.join('\n');
}
