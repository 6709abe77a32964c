import { meanCI } from '@transferlab/evaluation';
import { describe, expect, it } from 'vitest';
import { formatLambdaTable } from '../report.js';
import type { TrialRecord } from '../results.js';
import {
  accuracyChart,
  chartKind,
  chartRows,
  curvesChart,
  lambdaHeatmap,
  pairedChart,
  panelOf,
  predictedVsMeasuredChart,
  type TheoryRow,
  theoryAxes,
  theoryCharts,
} from './charts.js';
import { renderSvg } from './html.js';
import { countSvgMarks, expectedMarks, fixtureRecords } from './test-marks.js';

const rec = (
  task: string,
  method: string,
  seed: number,
  metrics: Record<string, number> | 'failed',
  extra: Partial<TrialRecord> = {},
): TrialRecord => ({
  suite: 's',
  task,
  method,
  seed,
  status: metrics === 'failed' ? 'failed' : 'ok',
  metrics: metrics === 'failed' ? {} : metrics,
  durationMs: 1,
  backend: 'cpu',
  ...extra,
});

const acc = (task: string, method: string, values: (number | 'failed')[]) =>
  values.map((v, seed) => rec(task, method, seed, v === 'failed' ? v : { target_test_acc: v }));

// Two tasks; t2's scratch has one seed (no CI) and its fine-tune only failures (no bar).
const records = [
  ...acc('t1', 'scratch', [0.5, 0.6, 0.7]),
  ...acc('t1', 'fine-tune', [0.7, 0.8, 0.75]),
  ...acc('t1', 'linear-probe', [0.65, 0.62, 0.71]),
  ...acc('t2', 'scratch', [0.4]),
  ...acc('t2', 'fine-tune', ['failed', 'failed']),
];

describe('accuracyChart', () => {
  const spec = accuracyChart(records);
  const rows = chartRows<{
    task: string;
    method: string;
    mean: number;
    ci95: number | null;
    lo: number | null;
    hi: number | null;
    n: number;
  }>(spec);

  it('passes per task × method the mean and meanCI half-width as inline rows', () => {
    expect(chartKind(spec)).toBe('accuracy');
    expect(rows.map((r) => [r.task, r.method, r.n])).toEqual([
      ['t1', 'scratch', 3],
      ['t1', 'fine-tune', 3],
      ['t1', 'linear-probe', 3],
      ['t2', 'scratch', 1],
    ]);
    const s = meanCI([0.7, 0.8, 0.75]);
    expect(rows[1]?.mean).toBe(s.mean);
    expect(rows[1]?.ci95).toBe(s.ci95);
    expect(rows[1]?.lo).toBe(s.mean - s.ci95);
    expect(rows[1]?.hi).toBe(s.mean + s.ci95);
    // By hand: sd of (0.7, 0.8, 0.75) is 0.05, so 4.303 · 0.05 / √3.
    expect(rows[1]?.ci95).toBeCloseTo((4.303 * 0.05) / Math.sqrt(3), 12);
    expect(rows[3]).toMatchObject({ mean: 0.4, ci95: null, lo: null, hi: null });
    // Vega computes nothing: no aggregate or CI transform of its own.
    expect(JSON.stringify(spec)).not.toMatch(/"ci0"|"ci1"|"aggregate"/);
  });

  it('renders a bar per row and a CI rule per row with a CI', async () => {
    const marks = countSvgMarks(await renderSvg(spec));
    expect(marks).toEqual({ bars: 4, ci: 3 });
    expect(marks).toEqual(expectedMarks(spec));
  });
});

describe('pairedChart', () => {
  it('has the mean paired difference per task × method and draws a point each and a zero rule per panel', async () => {
    const spec = pairedChart(records, 'scratch', 'target_test_acc');
    const rows = chartRows<{ task: string; method: string; mean: number; ci95: number; n: number }>(
      spec,
    );
    // t2 has no method with an ok value beside scratch: no row.
    expect(rows.map((r) => [r.task, r.method, r.n])).toEqual([
      ['t1', 'fine-tune', 3],
      ['t1', 'linear-probe', 3],
    ]);
    // fine-tune − scratch per seed: 0.2, 0.2, 0.05.
    expect(rows[0]?.mean).toBeCloseTo(0.15, 12);
    const sd = Math.sqrt((0.05 ** 2 * 2 + 0.1 ** 2) / 2);
    expect(rows[0]?.ci95).toBeCloseTo((4.303 * sd) / Math.sqrt(3), 12);
    const marks = countSvgMarks(await renderSvg(spec));
    expect(marks).toEqual({ zero: 1, ci: 2, points: 2 });
    expect(marks).toEqual(expectedMarks(spec));
  });
});

describe('curvesChart', () => {
  it('averages val accuracy per epoch over the seeds that reached it, a line per method and task', async () => {
    const curve = (vals: number[]) =>
      vals.map((valAcc, i) => ({ epoch: i + 1, trainLoss: 1, valAcc, valLoss: 1 }));
    const rs = [
      rec('t', 'a', 0, { target_test_acc: 0.5 }, { curve: curve([0.2, 0.4, 0.6]) }),
      rec('t', 'a', 1, { target_test_acc: 0.5 }, { curve: curve([0.4, 0.6]) }),
      rec('t', 'b', 0, { target_test_acc: 0.5 }, { curve: curve([0.5, 0.5, 0.5]) }),
      rec('u', 'a', 0, { target_test_acc: 0.5 }, { curve: curve([0.1, 0.9]) }),
      rec('u', 'b', 0, 'failed', { curve: curve([0.3]) }),
    ];
    const spec = curvesChart(rs);
    const rows = chartRows<{
      task: string;
      method: string;
      epoch: number;
      valAcc: number;
      n: number;
    }>(spec);
    const at = (task: string, method: string, epoch: number) =>
      rows.find((r) => r.task === task && r.method === method && r.epoch === epoch);
    expect(at('t', 'a', 1)).toMatchObject({ n: 2 });
    expect(at('t', 'a', 1)?.valAcc).toBeCloseTo(0.3, 12);
    expect(at('t', 'a', 3)).toMatchObject({ valAcc: 0.6, n: 1 });
    expect(at('u', 'b', 1)).toBeUndefined();
    expect(rows).toHaveLength(3 + 3 + 2);
    const marks = countSvgMarks(await renderSvg(spec));
    expect(marks).toEqual({ lines: 3 });
  });

  it('draws the quick fixture: 2 tasks × 3 methods', async () => {
    const spec = curvesChart(fixtureRecords('quick'));
    expect(countSvgMarks(await renderSvg(spec))).toEqual({ lines: 6 });
  });
});

describe('lambdaHeatmap', () => {
  it('averages l2t_lambda:<src>-><tgt> over seeds per method, as formatLambdaTable', async () => {
    const l2t = fixtureRecords('l2t-ww');
    const spec = lambdaHeatmap(l2t);
    const rows = chartRows<{
      group: string;
      source: string;
      target: string;
      value: number;
      n: number;
    }>(spec);
    expect(rows).toHaveLength(8);
    expect(new Set(rows.map((r) => r.group))).toEqual(new Set(['l2t-ww']));
    expect(rows.every((r) => r.n === 3)).toBe(true);
    // Independently: the mean over the fixture's three l2t-ww records of one key.
    const key = 'l2t_lambda:block2_1->conv2';
    const own = l2t.filter((r) => r.method === 'l2t-ww').map((r) => r.metrics[key] as number);
    const cell = rows.find((r) => r.source === 'block2_1' && r.target === 'conv2');
    expect(cell?.value).toBeCloseTo(own.reduce((a, b) => a + b, 0) / own.length, 12);
    // The same numbers as the text heat map, to its 3 decimals.
    const table = formatLambdaTable(l2t).split('\n\n')[0] as string;
    const line = table.split('\n').find((l) => l.startsWith('| block2_1 |')) as string;
    const cells = line
      .split('|')
      .slice(2, -1)
      .map((c) => Number(c.trim()));
    const sorted = ['conv1', 'conv2'].map(
      (t) => rows.find((r) => r.source === 'block2_1' && r.target === t)?.value as number,
    );
    expect(cells).toEqual(sorted.map((v) => Number(v.toFixed(3))));

    const marks = countSvgMarks(await renderSvg(spec));
    expect(marks).toEqual({ cells: 8, labels: 8 });
  });

  it('draws one panel per method, keeping unpaired keys out', () => {
    const rs = [
      rec('t', 'l2t-ww', 0, { 'l2t_lambda:a->b': 1, 'l2t_lambda:a->c': 3, l2t_lambda_bad: 9 }),
      rec('t', 'l2t-ww', 1, { 'l2t_lambda:a->b': 2 }),
      rec('t', 'other', 0, { 'l2t_lambda:a->b': 0.5 }),
    ];
    const rows = chartRows<{ group: string; pair?: string; value: number; n: number }>(
      lambdaHeatmap(rs),
    );
    expect(rows.map((r) => [r.group, r.value, r.n])).toEqual([
      ['l2t-ww', 1.5, 2],
      ['l2t-ww', 3, 1],
      ['other', 0.5, 1],
    ]);
  });
});

describe('theory charts', () => {
  it('finds the x named in the task and leaves the rest as the panel', () => {
    expect(panelOf('dF=0 dT=0 · n=25', 25)).toBe('dF=0 dT=0');
    expect(panelOf('n=10', 10)).toBe('');
    expect(panelOf('α=0.123', 0.12345)).toBe('');
    expect(panelOf('α=0.123', 0.5)).toBe('α=0.123');
    expect(panelOf('κ=3 · n=40', 40)).toBe('κ=3');
  });

  it('picks the metrics each theory suite records', () => {
    expect(theoryAxes(fixtureRecords('theory-chmm-quick'))).toEqual([
      {
        x: 'n_target',
        predicted: 'predicted_test_error',
        measured: 'measured_test_error',
        measuredSe: 'measured_test_error_se',
      },
    ]);
    // predicted_bias, _variance and _approximation_error have nothing measured.
    expect(theoryAxes(fixtureRecords('theory-linear'))).toEqual([
      {
        x: 'n',
        predicted: 'predicted_risk',
        measured: 'measured_risk',
        measuredSe: 'measured_risk_se',
      },
    ]);
    expect(theoryAxes(fixtureRecords('quick'))).toEqual([]);
    expect(theoryCharts(fixtureRecords('l2t-ww'))).toEqual([]);
    // theory-gcm's shape: α is the x (n varies too, but α comes first), two quantities.
    const gcm = [0.5, 1, 2].map((alpha) =>
      rec(`α=${alpha.toFixed(3)}`, 'logistic λ=0.1', 0, {
        alpha,
        n: alpha * 100,
        predicted_test_error: 0.3 / alpha,
        measured_test_error: 0.31 / alpha,
        measured_test_error_se: 0.01,
        predicted_train_loss: 0.1,
        measured_train_loss: 0.11,
      }),
    );
    expect(theoryAxes(gcm)).toEqual([
      {
        x: 'alpha',
        predicted: 'predicted_test_error',
        measured: 'measured_test_error',
        measuredSe: 'measured_test_error_se',
      },
      { x: 'alpha', predicted: 'predicted_train_loss', measured: 'measured_train_loss' },
    ]);
    const rows = chartRows<TheoryRow>(theoryCharts(gcm)[1] as never);
    expect(rows.every((r) => r.panel === '' && r.se === null && r.lo === null)).toBe(true);
  });

  it('averages seeds, combines their standard errors, and draws ±2 se', async () => {
    const axes = {
      x: 'n',
      predicted: 'predicted_risk',
      measured: 'measured_risk',
      measuredSe: 'measured_risk_se',
    };
    const rs = [
      rec('n=10', 'm', 0, { n: 10, predicted_risk: 1, measured_risk: 1.2, measured_risk_se: 0.3 }),
      rec('n=10', 'm', 1, { n: 10, predicted_risk: 1, measured_risk: 0.8, measured_risk_se: 0.4 }),
      rec('n=20', 'm', 0, {
        n: 20,
        predicted_risk: 0.5,
        measured_risk: 0.6,
        measured_risk_se: 0.1,
      }),
      rec('n=20', 'scratch', 0, { n: 20, measured_risk: 0.9, measured_risk_se: 0.1 }),
    ];
    const spec = predictedVsMeasuredChart(rs, axes);
    const rows = chartRows<TheoryRow>(spec);
    const first = rows.find((r) => r.x === 10);
    // Mean of two independent estimates: se = √(0.3² + 0.4²)/2 = 0.25.
    expect(first).toMatchObject({ panel: '', method: 'm', predicted: 1, n: 2 });
    expect(first?.measured).toBeCloseTo(1, 12);
    expect(first?.se).toBeCloseTo(0.25, 12);
    expect(first?.lo).toBeCloseTo(0.5, 12);
    expect(first?.hi).toBeCloseTo(1.5, 12);
    expect(rows.find((r) => r.method === 'scratch')).toMatchObject({
      predicted: null,
      measured: 0.9,
    });
    const marks = countSvgMarks(await renderSvg(spec));
    expect(marks).toEqual({ predicted: 1, se: 3, measured: 3 });
  });

  it('draws the chmm fixture: 2 panels × 3 sizes; scratch has no prediction', async () => {
    const [spec] = theoryCharts(fixtureRecords('theory-chmm-quick'));
    if (!spec) throw new Error('no chart');
    const rows = chartRows<TheoryRow>(spec);
    expect(new Set(rows.map((r) => r.panel))).toEqual(new Set(['dF=0 dT=0', 'dF=1 dT=0']));
    expect(rows).toHaveLength(18);
    const marks = countSvgMarks(await renderSvg(spec));
    // Lines: transfer and random-features in each of the 2 panels.
    expect(marks).toEqual({ predicted: 4, se: 18, measured: 18 });
    expect(marks).toEqual(expectedMarks(spec));
  });

  it('draws the theory-linear fixture: 3 representations × 8 sizes', async () => {
    const [spec] = theoryCharts(fixtureRecords('theory-linear'));
    if (!spec) throw new Error('no chart');
    expect(countSvgMarks(await renderSvg(spec))).toEqual({ predicted: 3, se: 24, measured: 24 });
  });
});
