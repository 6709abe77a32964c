import { CHMM_ACTIVATIONS } from '@transferlab/datasets';
import { meanCI } from '@transferlab/evaluation';
import { z } from 'zod';
import { type ExecuteOptions, type ExecuteResult, executeSuite } from '../execute.js';
import { formatAgreement, formatTable } from '../report.js';
import type { TrialRecord } from '../results.js';
import {
  type PlannedUnit,
  SUITE_KIND_SPECIFICATION_VERSION,
  type SuiteKind,
} from '../suite-kind.js';
import { type FixedFeaturePredictor, gcmPredictor } from './analytic.js';
import {
  CHMM_METHODS,
  type ChmmExperimentOptions,
  chmmLevelLabel,
  chmmTask,
  resolveChmmExperiment,
  runChmmSeed,
} from './experiment.js';
import { NET_ACTIVATIONS } from './network.js';

/**
 * A theory suite on the correlated hidden-manifold model: the experiment's
 * options, run for `seeds` seeds.
 */
export interface ChmmSuite {
  readonly kind: 'theory-chmm';
  readonly id: string;
  readonly description: string;
  readonly seeds: number;
  readonly experiment: Omit<
    ChmmExperimentOptions,
    'seeds' | 'backend' | 'suite' | 'run' | 'onRecord' | 'onProgress' | 'predictor'
  >;
}

const nonNegative = z.number().min(0);
const correlation = {
  featurePerturbation: nonNegative.optional(),
  featureSubstitution: z.number().min(0).max(1).optional(),
  teacherPerturbation: nonNegative.optional(),
};
const training = z
  .strictObject({
    steps: z.number().int().positive(),
    batchSize: z.number().int().positive(),
    lr: z.number().positive(),
    weightDecay: nonNegative,
    loss: z.enum(['square', 'logistic']),
  })
  .partial();
const positiveInt = z.number().int().positive();

export const chmmSuiteSchema = z.strictObject({
  kind: z.literal('theory-chmm'),
  id: z.string().min(1),
  description: z.string(),
  seeds: positiveInt,
  experiment: z.strictObject({
    params: z.strictObject({
      D: positiveInt,
      N: positiveInt,
      activation: z.enum(CHMM_ACTIVATIONS),
      ...correlation,
    }),
    levels: z
      .array(z.strictObject({ ...correlation, label: z.string().min(1).optional() }))
      .min(1)
      .optional(),
    nSource: positiveInt,
    nTargetList: z.array(positiveInt).min(1),
    hidden: positiveInt,
    methods: z.array(z.enum(CHMM_METHODS)).min(1).optional(),
    activation: z.enum(NET_ACTIVATIONS).optional(),
    sourceTraining: training.optional(),
    scratchTraining: training.optional(),
    readout: z
      .strictObject({
        loss: z.enum(['square', 'logistic']).optional(),
        lambda: z.number().positive().optional(),
      })
      .optional(),
    nTest: positiveInt.optional(),
    nSourceTest: positiveInt.optional(),
    targetRepeats: positiveInt.optional(),
    scratchRepeats: positiveInt.optional(),
    gaussianSurrogate: z.boolean().optional(),
  }),
}) satisfies z.ZodType<ChmmSuite>;

/** The experiment's own checks, with the suite path in front of each. */
function checkChmm(suite: ChmmSuite): void {
  const e = suite.experiment;
  const labels = (e.levels ?? []).map(chmmLevelLabel);
  const twice = labels.findIndex((l, i) => labels.indexOf(l) !== i);
  if (twice >= 0)
    throw new Error(
      `experiment.levels[${twice}]: labelled "${labels[twice]}" as experiment.levels[${labels.indexOf(labels[twice] as string)}]; give them distinct labels`,
    );
  const n = e.nTargetList.findIndex((v, i) => e.nTargetList.indexOf(v) !== i);
  if (n >= 0)
    throw new Error(`experiment.nTargetList[${n}]: n_target ${e.nTargetList[n]} appears twice`);
  const m = (e.methods ?? []).findIndex((v, i) => e.methods?.indexOf(v) !== i);
  if (m >= 0) throw new Error(`experiment.methods[${m}]: "${e.methods?.[m]}" appears twice`);
  const repeats = e.targetRepeats ?? 1;
  if ((e.scratchRepeats ?? repeats) > repeats)
    throw new Error(
      `experiment.scratchRepeats: ${e.scratchRepeats} exceeds targetRepeats (${repeats})`,
    );
  // Anything else the experiment refuses, before any work.
  resolveChmmExperiment(e);
}

/**
 * One unit per seed: the seed's source network serves every level, and each
 * level's data every method. A trial depends on the experiment's sizes and
 * training (the list of sizes too: predictions and training sets are made
 * for all of them at once), its level and that level's place in the list
 * (scratch and surrogate draws are named by it), its n, the predictor, and
 * the tfjs backend that trains the networks.
 */
function planChmm(
  suite: ChmmSuite,
  seeds: readonly number[],
  backend: string | undefined,
  predictor: FixedFeaturePredictor | null,
): PlannedUnit[] {
  const r = resolveChmmExperiment(suite.experiment);
  const { levels: _levels, methods: _methods, ...shared } = suite.experiment;
  return seeds.map((seed) => ({
    id: `seed ${seed}`,
    seed,
    trials: r.levels.flatMap((level, index) =>
      r.methods.flatMap((method) =>
        r.nList.map((n) => ({
          task: chmmTask(r.labels[index] as string, n),
          method,
          seed,
          determinants: {
            ...shared,
            level: { index, ...level },
            n,
            predictor: predictor?.name ?? null,
            backend: backend ?? 'default',
          },
        })),
      ),
    ),
  }));
}

/** The theory-chmm kind, with the GCM (or another predictor; null: none) for the fixed feature maps. */
export function createChmmKind(
  predictor: FixedFeaturePredictor | null = gcmPredictor,
): SuiteKind<ChmmSuite> {
  return {
    specificationVersion: SUITE_KIND_SPECIFICATION_VERSION,
    id: 'theory-chmm',
    description:
      "Gerace et al.'s correlated hidden-manifold model: transfer vs random features vs scratch learning curves, the GCM prediction beside each fixed-feature measurement.",
    schema: chmmSuiteSchema,
    firstSeed: true,
    check: (suite) => checkChmm(suite),
    plan: (suite, seeds, ctx) => planChmm(suite, seeds, ctx.backend, predictor),
    async runUnit(suite, unit, ctx) {
      const r = resolveChmmExperiment({ ...suite.experiment, predictor });
      await runChmmSeed(r, unit.seed, {
        backend: ctx.backend,
        emit: ctx.record,
        progress: (label, index, total) => ctx.progress.trial(label, index, total),
        isDone: ctx.isDone,
      });
    },
    summarize(records, opts) {
      const agreement = formatAgreement(records);
      const extra = opts.metric ? formatTable(records, opts.metric, false) : '';
      return [formatChmmTable(records), agreement, extra].filter((t) => t !== '').join('\n\n');
    },
  };
}

export const theoryChmmKind = createChmmKind();

/**
 * Run a CHMM suite (see `executeSuite`: resume, each record appended to
 * `outDir/results.jsonl` as soon as it exists, one per seed × level × method
 * × n_target). A `predictor` other than the GCM runs in this process only.
 */
export function runChmmSuite(
  opts: Omit<ExecuteOptions, 'kind' | 'suite'> & {
    suite: ChmmSuite;
    predictor?: FixedFeaturePredictor | null;
  },
): Promise<ExecuteResult> {
  const { suite, predictor, ...rest } = opts;
  if (predictor !== undefined && (rest.jobs ?? 1) > 1)
    throw new Error('runChmmSuite: a custom predictor needs jobs = 1 (workers use the GCM)');
  const kind = predictor === undefined ? theoryChmmKind : createChmmKind(predictor);
  return executeSuite({ kind, suite, ...rest });
}

/**
 * Learning curves as text: one block per correlation level, one row per
 * n_target, measured (and predicted) test error of each method in %, mean
 * over seeds. Measured cells carry ± the standard error of that mean given
 * the seeds' feature maps, √(Σ se²)/seeds from `measured_test_error_se` (the
 * prediction changes with the seed's features, so this, not the spread over
 * seeds, is what a prediction is compared with); records without an se show
 * ± the 95% CI over seeds.
 */
export function formatChmmTable(records: readonly TrialRecord[]): string {
  const ok = records.filter((r) => r.status === 'ok');
  const levelOf = (r: TrialRecord) => r.task.replace(/ · n=\d+$/, '');
  const levels = [...new Set(records.map(levelOf))];
  const methods = [...new Set(records.map((r) => r.method))];
  const cell = (vals: number[]) => {
    if (vals.length === 0) return '';
    const s = meanCI(vals);
    return `${(100 * s.mean).toFixed(1)}${Number.isNaN(s.ci95) ? '' : ` ± ${(100 * s.ci95).toFixed(1)}`}`;
  };
  const measuredCell = (rs: TrialRecord[]) => {
    const ses = rs.map((r) => r.metrics.measured_test_error_se);
    if (rs.length === 0 || ses.some((v) => v === undefined))
      return cell(rs.map((r) => r.metrics.measured_test_error as number));
    const m = rs.reduce((a, r) => a + (r.metrics.measured_test_error as number), 0) / rs.length;
    const se = Math.sqrt(ses.reduce((a: number, v) => a + (v as number) ** 2, 0)) / rs.length;
    return `${(100 * m).toFixed(1)} ± ${(100 * se).toFixed(2)}`;
  };
  const out: string[] = [
    `test error (%) on the target, mean over seeds (n = ${new Set(records.map((r) => r.seed)).size}) ± standard error; "pred" = Gaussian covariate model`,
  ];
  for (const level of levels) {
    const rows = ok.filter((r) => levelOf(r) === level);
    const ns = [...new Set(rows.map((r) => r.metrics.n_target as number))].sort((a, b) => a - b);
    const header = ['n_target'];
    for (const m of methods) {
      header.push(m);
      if (rows.some((r) => r.method === m && r.metrics.predicted_test_error !== undefined))
        header.push(`${m} pred`);
    }
    const body = ns.map((n) => {
      const cells = [String(n)];
      for (const m of methods) {
        const at = rows.filter((r) => r.method === m && r.metrics.n_target === n);
        cells.push(measuredCell(at));
        if (header.includes(`${m} pred`)) {
          // the prediction's mean only: its spread over seeds is the seeds' features, not noise
          const preds = at
            .map((r) => r.metrics.predicted_test_error)
            .filter((v): v is number => v !== undefined);
          cells.push(
            preds.length === 0
              ? ''
              : (100 * (preds.reduce((a, b) => a + b, 0) / preds.length)).toFixed(1),
          );
        }
      }
      return cells;
    });
    const failed = records.filter((r) => levelOf(r) === level && r.status !== 'ok').length;
    const widths = header.map((h, i) =>
      Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)),
    );
    const line = (cells: string[]) =>
      `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
    out.push(
      '',
      `${level}${failed ? ` (${failed} failed)` : ''}`,
      line(header),
      `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
      ...body.map(line),
    );
  }
  return out.join('\n');
}
