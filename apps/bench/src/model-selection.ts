import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { disposeParams, initBackend, type Params } from '@transferlab/core';
import { type Dataset, toTensors } from '@transferlab/datasets';
import { hScore, kendallTau, leep, logME, meanCI, nce } from '@transferlab/evaluation';
import { fineTune } from '@transferlab/methods';
import { type Backbone, linearHead } from '@transferlab/models';
import { loadOrPretrain } from './pretrain-cache.js';
import { createProgress } from './progress.js';
import {
  createResultsLog,
  failedRecord,
  type SuiteRunOptions,
  type SuiteRunResult,
  type TrialRecord,
} from './results.js';
import { checkTaskOptions, defaultRegistries, type Registries } from './run-suite.js';
import { defaultPretrainConfig, type PretrainConfig, runTrial } from './runner.js';

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

export async function runModelSelection(
  opts: SuiteRunOptions<ModelSelectionSuite> & { registries?: Registries },
): Promise<SuiteRunResult> {
  const { suite } = opts;
  const reg = opts.registries ?? defaultRegistries();
  const seeds = opts.seeds ?? suite.seeds;
  const factory = reg.backbones.get(suite.backbone);
  const targets = suite.targets.map((t) => {
    const spec = reg.tasks.get(t.id);
    checkTaskOptions(suite.id, spec, t.options);
    return { spec, options: t.options ?? {} };
  });
  const candidates = suite.candidates.map((c) => {
    const spec = reg.tasks.get(c.task);
    checkTaskOptions(suite.id, spec, c.options);
    return { ...c, spec };
  });
  const ftConfig = fineTune.validate(suite.fineTune ?? {});
  const backend = await initBackend(opts.backend ? { backend: opts.backend } : {});
  const progress = opts.progress ?? createProgress();
  const run = new Date().toISOString();
  const log = createResultsLog(opts.outDir, (r) =>
    progress.done(
      r.status === 'ok'
        ? `${r.task} ← ${r.source} seed ${r.seed}: acc ${(100 * (r.metrics.measured_target_test_acc ?? 0)).toFixed(1)}%`
        : `${r.task} ← ${r.source} seed ${r.seed}: FAILED: ${r.error}`,
    ),
  );
  const total = seeds * targets.length * candidates.length;
  let index = 0;
  for (let seed = 0; seed < seeds; seed++) {
    for (const target of targets) {
      const pair = await target.spec.build({ ...target.options, seed });
      const backbone = factory.create(pair.target.train.shape);
      for (const candidate of candidates) {
        progress.trial(`${target.spec.id} ← ${candidate.label} · seed ${seed}`, index++, total);
        const started = Date.now();
        const base = {
          suite: suite.id,
          run,
          task: target.spec.id,
          method: 'fine-tune',
          source: candidate.label,
          seed,
          backend: backend.name,
          backbone: backbone.spec.name,
        };
        let pretrained: Awaited<ReturnType<typeof loadOrPretrain>> | undefined;
        try {
          const sourcePair = await candidate.spec.build({ ...candidate.options, seed });
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
            cacheDir: join(opts.outDir, 'cache'),
            onEpoch: (e) => progress.epoch('pretrain', e.epoch, e.epochs),
          });
          const train = pair.target.train;
          const out = sourceOutputs(
            backbone,
            pretrained.params,
            pretrained.sourceHead,
            sourcePair.source.train.numClasses,
            train,
          );
          const rows = (data: Float32Array, width: number) => ({
            data,
            rows: train.y.length,
            cols: width,
          });
          const sourceClasses = sourcePair.source.train.numClasses;
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
            onEpoch: (e) => progress.epoch('fine-tune', e.epoch, e.epochs),
          });
          log.add({
            ...base,
            status: 'ok',
            metrics: {
              measured_target_test_acc: trial.metrics.target_test_acc as number,
              ...predicted,
              source_train_acc: pretrained.sourceTrainAcc,
            },
            durationMs: Date.now() - started,
          });
        } catch (err) {
          log.add(failedRecord(base, err, started));
        } finally {
          if (pretrained) {
            disposeParams(pretrained.params);
            disposeParams(pretrained.sourceHead);
          }
        }
      }
    }
  }
  progress.close();
  return { records: log.records, backend: backend.name, resultsPath: log.path };
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
