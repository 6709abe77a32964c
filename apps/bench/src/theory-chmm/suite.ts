import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { activeBackend } from '@transferlab/core';
import { meanCI } from '@transferlab/evaluation';
import { createProgress } from '../progress.js';
import {
  appendRecord,
  type SuiteRunOptions,
  type SuiteRunResult,
  type TrialRecord,
} from '../results.js';
import type { FixedFeaturePredictor } from './analytic.js';
import { type ChmmExperimentOptions, runChmmExperiment } from './experiment.js';

/**
 * A theory suite on the correlated hidden-manifold model: the experiment's
 * options, run for `seeds` seeds (0..seeds−1).
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

/**
 * The paper's protocol: learning curves (n_target from 25 to 800, K = 100
 * hidden units, α = n/K from 0.25 to 8) of transfer, random features and
 * scratch, as the target's feature map (δ_F, substitution) and labelling
 * rule (δ_θ) move away from the source's.
 */
export const theoryChmmSuite: ChmmSuite = {
  kind: 'theory-chmm',
  id: 'theory-chmm',
  description:
    'Correlated hidden-manifold model (Gerace et al. 2022): transfer (frozen source layer + ridge readout) vs random features vs scratch, n_target 25…800, feature and teacher perturbations; GCM prediction beside each fixed-feature measurement ± its standard error over 20 training sets. 3 seeds.',
  seeds: 3,
  experiment: {
    params: { D: 50, N: 100, activation: 'erf' },
    levels: [
      {},
      { featurePerturbation: 0.5 },
      { featurePerturbation: 1 },
      { featurePerturbation: 2 },
      { featureSubstitution: 0.5 },
      { teacherPerturbation: 0.5 },
      { teacherPerturbation: 1 },
    ],
    nSource: 5000,
    nTargetList: [25, 50, 100, 200, 400, 800],
    hidden: 100,
    activation: 'erf',
    sourceTraining: { steps: 1500 },
    scratchTraining: { steps: 400 },
    readout: { loss: 'square', lambda: 0.1 },
    nTest: 20_000,
    // 20 training sets per trial: their spread is measured_test_error_se (the readouts are cheap);
    // scratch trains a network per set, so two.
    targetRepeats: 20,
    scratchRepeats: 2,
  },
};

/** A one-minute version: two levels, three sizes, one seed. */
export const theoryChmmQuickSuite: ChmmSuite = {
  kind: 'theory-chmm',
  id: 'theory-chmm-quick',
  description:
    'theory-chmm in under a minute: identical tasks and a perturbed feature map (δ_F = 1), n_target 25/100/400, 1 seed.',
  seeds: 1,
  experiment: {
    ...theoryChmmSuite.experiment,
    levels: [{}, { featurePerturbation: 1 }],
    nSource: 3000,
    nTargetList: [25, 100, 400],
    sourceTraining: { steps: 600 },
    scratchTraining: { steps: 300 },
    nTest: 10_000,
  },
};

/**
 * Where the GCM misses: transfer and random features on identical and
 * perturbed tasks, each also fitted on Gaussian features with the same
 * covariances (`surrogate_test_error`). Prediction = surrogate ≠ measured
 * means the features are not Gaussian-equivalent.
 */
export const theoryChmmSurrogateSuite: ChmmSuite = {
  kind: 'theory-chmm',
  id: 'theory-chmm-surrogate',
  description:
    'theory-chmm diagnostics: transfer and random features at δ_F = 0 and 1, each measurement beside the GCM prediction and the same readout on Gaussian features with the estimated covariances. 3 seeds.',
  seeds: 3,
  experiment: {
    ...theoryChmmSuite.experiment,
    levels: [{}, { featurePerturbation: 1 }],
    methods: ['transfer', 'random-features'],
    gaussianSurrogate: true,
  },
};

/**
 * The surrogate diagnostics with every size doubled at fixed ratios (D, N,
 * K, n_source, n_target): a finite-size gap between the GCM and its own
 * Gaussian model shrinks here; a Gaussian-equivalence gap does not.
 */
export const theoryChmmSurrogate2xSuite: ChmmSuite = {
  kind: 'theory-chmm',
  id: 'theory-chmm-surrogate-2x',
  description:
    'theory-chmm-surrogate (transfer only) with D, N, K, n_source and n_target doubled: does the prediction’s gap to the Gaussian model shrink with size?',
  seeds: 2,
  experiment: {
    ...theoryChmmSurrogateSuite.experiment,
    params: { D: 100, N: 200, activation: 'erf' },
    hidden: 200,
    nSource: 10_000,
    nTargetList: [50, 100, 200, 400, 800, 1600],
    methods: ['transfer'],
  },
};

export const chmmSuites: readonly ChmmSuite[] = [
  theoryChmmSuite,
  theoryChmmQuickSuite,
  theoryChmmSurrogateSuite,
  theoryChmmSurrogate2xSuite,
];

/**
 * Run a CHMM suite: every record is appended to `outDir/results.jsonl` as
 * soon as it exists (one per seed × level × method × n_target).
 */
export async function runChmmSuite(
  opts: SuiteRunOptions<ChmmSuite> & { predictor?: FixedFeaturePredictor | null },
): Promise<SuiteRunResult> {
  const { suite } = opts;
  const seeds = opts.seeds ?? suite.seeds;
  if (!(Number.isInteger(seeds) && seeds >= 1))
    throw new Error(`--seeds must be a positive integer, got ${seeds}`);
  const progress = opts.progress ?? createProgress();
  const resultsPath = join(opts.outDir, 'results.jsonl');
  mkdirSync(opts.outDir, { recursive: true });
  const levels = suite.experiment.levels?.length ?? 1;
  const methods = suite.experiment.methods?.length ?? 3;
  const total = seeds * levels * methods;
  let index = 0;
  const records = await runChmmExperiment({
    ...suite.experiment,
    seeds,
    suite: suite.id,
    ...(opts.backend ? { backend: opts.backend } : {}),
    ...(opts.predictor !== undefined ? { predictor: opts.predictor } : {}),
    onProgress: (label) => {
      if (label.endsWith('source training')) progress.trial(label, index, total);
      else progress.trial(label, index++, total);
    },
    onRecord: (r) => {
      appendRecord(resultsPath, r);
      const pct = (v: number | undefined) => (v === undefined ? '—' : `${(100 * v).toFixed(1)}%`);
      progress.done(
        r.status === 'ok'
          ? `${r.task} ${r.method} seed ${r.seed}: error ${pct(r.metrics.measured_test_error)}` +
              (r.metrics.predicted_test_error !== undefined
                ? ` (predicted ${pct(r.metrics.predicted_test_error)})`
                : '')
          : `${r.task} ${r.method} seed ${r.seed}: FAILED: ${r.error}`,
      );
    },
  });
  progress.close();
  return { records, backend: records[0]?.backend ?? activeBackend(), resultsPath };
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
