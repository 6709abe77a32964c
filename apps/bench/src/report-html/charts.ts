import type { TopLevelSpec } from 'vega-lite';
import type { TrialRecord } from '../results.js';
import {
  distinct,
  finiteOrNull,
  hasMetric,
  isFraction,
  okValue,
  pairedRows,
  summaryRows,
} from './stats.js';

/** A Vega-Lite specification, as `compile` from vega-lite takes it. */
export type VegaLiteSpec = TopLevelSpec;

type FacetTop = Extract<TopLevelSpec, { facet: unknown }>;
type InnerSpec = FacetTop['spec'];
/** The layers of a layered view, typed as vega-lite types them. */
export type Layers = Extract<InnerSpec, { layer: unknown }>['layer'];

/** What kind of chart a spec is: `usermeta.chart`, read by the HTML report and the tests. */
export type ChartKind = 'accuracy' | 'paired' | 'curves' | 'lambda' | 'theory';

/** The kind a spec was built as, if it came from this module. */
export function chartKind(spec: VegaLiteSpec): ChartKind | undefined {
  const meta = (spec as { usermeta?: { chart?: ChartKind } }).usermeta;
  return meta?.chart;
}

/** The inline rows a spec from this module draws. */
export function chartRows<T = Record<string, unknown>>(spec: VegaLiteSpec): T[] {
  const data = (spec as { data?: { values?: unknown } }).data;
  return Array.isArray(data?.values) ? (data.values as T[]) : [];
}

interface Frame {
  width: number | { step: number };
  height: number | { step: number };
  layer: Layers;
}

interface Heading {
  kind: ChartKind;
  title: string;
  subtitle?: string;
}

/**
 * One view per value of `field` (wrapped two to a row), or a single view when
 * there is only one value and `alwaysFacet` is off. Scales are shared, so
 * panels compare at a glance.
 */
function facetOrSingle(
  rows: Record<string, unknown>[],
  field: string,
  order: string[],
  frame: Frame,
  heading: Heading,
  alwaysFacet: boolean,
): VegaLiteSpec {
  const title = heading.subtitle
    ? { text: heading.title, subtitle: heading.subtitle }
    : { text: heading.title };
  const top = { title, usermeta: { chart: heading.kind }, data: { values: rows } };
  if (!alwaysFacet && order.length <= 1) return { ...top, ...frame } as VegaLiteSpec;
  return {
    ...top,
    facet: { field, type: 'nominal', sort: order, title: null },
    columns: 2,
    spec: frame,
  } as VegaLiteSpec;
}

/** Axis number format: fractions as percentages. */
function fmt(percent: boolean, signed = false): string {
  return `${signed ? '+' : ''}${percent ? '.0%' : '~g'}`;
}

/**
 * Per task, the mean of `metric` per method as bars with a 95% CI (meanCI's
 * Student-t half-width, computed here: Vega's own CI aggregate bootstraps) as
 * a rule from lo to hi. Cells whose every trial failed are left out; cells
 * with one seed have a bar and no rule.
 */
export function accuracyChart(
  records: readonly TrialRecord[],
  metric = 'target_test_acc',
): VegaLiteSpec {
  const rows = summaryRows(records, metric)
    .filter((r) => r.mean !== null)
    .map((r) => ({
      task: r.task,
      method: r.method,
      mean: r.mean as number,
      ci95: r.ci95,
      lo: r.ci95 === null ? null : (r.mean as number) - r.ci95,
      hi: r.ci95 === null ? null : (r.mean as number) + r.ci95,
      n: r.n,
      n_failed: r.n_failed,
    }));
  const methods = distinct(rows.map((r) => r.method));
  // The means decide: a CI may reach past 1 without the metric ceasing to be a fraction.
  const percent = isFraction(
    metric,
    rows.map((r) => r.mean),
  );
  const x = {
    field: 'method',
    type: 'nominal',
    sort: methods,
    title: null,
    axis: { labelAngle: -30 },
  } as const;
  return facetOrSingle(
    rows,
    'task',
    distinct(rows.map((r) => r.task)),
    {
      width: { step: 34 },
      height: 170,
      layer: [
        {
          name: 'bars',
          mark: { type: 'bar', opacity: 0.85 },
          encoding: {
            x,
            y: {
              field: 'mean',
              type: 'quantitative',
              title: metric,
              axis: { format: fmt(percent) },
            },
            color: { field: 'method', type: 'nominal', scale: { domain: methods }, legend: null },
          },
        },
        {
          name: 'ci',
          transform: [{ filter: 'isValid(datum.lo)' }],
          mark: { type: 'rule', strokeWidth: 1.5, color: 'black' },
          encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
        },
      ],
    },
    {
      kind: 'accuracy',
      title: `${metric}: mean ± 95% CI over seeds`,
      subtitle: `n = ${distinct(records.map((r) => r.seed)).length} seeds`,
    },
    true,
  );
}

/**
 * Per task × method, the mean paired difference (method − baseline on the
 * same seed) with its 95% CI, a rule at 0: a CI that crosses the rule is no
 * evidence of a difference.
 */
export function pairedChart(
  records: readonly TrialRecord[],
  baseline: string,
  metric = 'target_test_acc',
): VegaLiteSpec {
  const rows = pairedRows(records, baseline, metric).map((r) => ({
    task: r.task,
    method: r.method,
    mean: r.mean,
    ci95: r.ci95,
    lo: r.ci95 === null ? null : r.mean - r.ci95,
    hi: r.ci95 === null ? null : r.mean + r.ci95,
    n: r.n,
  }));
  const methods = distinct(rows.map((r) => r.method));
  const percent = /acc|error/.test(metric) && records.every((r) => fractionOrAbsent(r, metric));
  const y = { field: 'method', type: 'nominal', sort: methods, title: null } as const;
  const xTitle = `${metric}: method − ${baseline}`;
  return facetOrSingle(
    rows,
    'task',
    distinct(rows.map((r) => r.task)),
    {
      width: 220,
      height: { step: 22 },
      layer: [
        {
          name: 'zero',
          // One row per panel: a rule per data row would stack copies.
          transform: [{ aggregate: [{ op: 'count', as: 'rows' }] }],
          mark: { type: 'rule', color: '#888', strokeDash: [4, 3] },
          encoding: { x: { datum: 0, type: 'quantitative' } },
        },
        {
          name: 'ci',
          transform: [{ filter: 'isValid(datum.lo)' }],
          mark: { type: 'rule', strokeWidth: 1.5 },
          encoding: {
            y,
            x: { field: 'lo', type: 'quantitative', title: xTitle },
            x2: { field: 'hi' },
            color: { field: 'method', type: 'nominal', scale: { domain: methods }, legend: null },
          },
        },
        {
          name: 'points',
          mark: { type: 'point', filled: true, size: 60 },
          encoding: {
            y,
            x: {
              field: 'mean',
              type: 'quantitative',
              title: xTitle,
              axis: { format: fmt(percent, true) },
            },
            color: { field: 'method', type: 'nominal', scale: { domain: methods }, legend: null },
          },
        },
      ],
    },
    {
      kind: 'paired',
      title: `paired difference in ${metric} against ${baseline}, same seed: mean ± 95% CI`,
    },
    true,
  );
}

function fractionOrAbsent(r: TrialRecord, metric: string): boolean {
  const v = okValue(r, metric);
  return v === undefined || (v >= 0 && v <= 1);
}

/** One point of a mean learning curve. */
export interface CurveRow {
  task: string;
  method: string;
  epoch: number;
  /** Mean over the seeds that reached this epoch. */
  valAcc: number;
  n: number;
}

/** Validation accuracy per epoch (`record.curve`), mean over seeds, per task and method. */
export function curveRows(records: readonly TrialRecord[]): CurveRow[] {
  const sums = new Map<
    string,
    { task: string; method: string; epoch: number; sum: number; n: number }
  >();
  for (const r of records) {
    if (r.status !== 'ok' || !r.curve) continue;
    for (const p of r.curve) {
      if (!Number.isFinite(p.valAcc)) continue;
      const key = JSON.stringify([r.task, r.method, p.epoch]);
      const acc = sums.get(key) ?? { task: r.task, method: r.method, epoch: p.epoch, sum: 0, n: 0 };
      acc.sum += p.valAcc;
      acc.n += 1;
      sums.set(key, acc);
    }
  }
  return [...sums.values()].map((a) => ({
    task: a.task,
    method: a.method,
    epoch: a.epoch,
    valAcc: a.sum / a.n,
    n: a.n,
  }));
}

/** Learning curves: validation accuracy per epoch, mean over seeds, a colour per method, a panel per task. */
export function curvesChart(records: readonly TrialRecord[]): VegaLiteSpec {
  const rows = curveRows(records);
  const methods = distinct(rows.map((r) => r.method));
  return facetOrSingle(
    rows as unknown as Record<string, unknown>[],
    'task',
    distinct(rows.map((r) => r.task)),
    {
      width: 240,
      height: 160,
      layer: [
        {
          name: 'lines',
          mark: { type: 'line', strokeWidth: 1.8 },
          encoding: {
            x: { field: 'epoch', type: 'quantitative', title: 'epoch' },
            y: {
              field: 'valAcc',
              type: 'quantitative',
              title: 'validation accuracy',
              scale: { zero: false },
              axis: { format: '.0%' },
            },
            color: { field: 'method', type: 'nominal', scale: { domain: methods }, title: null },
          },
        },
      ],
    },
    { kind: 'curves', title: 'validation accuracy per epoch, mean over seeds' },
    true,
  );
}

/** One cell of an L2T-ww heat map. */
export interface PairRow {
  /** The panel: the method, prefixed by the task when several tasks have pairs. */
  group: string;
  task: string;
  method: string;
  source: string;
  target: string;
  value: number;
  n: number;
}

/**
 * Mean over seeds of the per-pair metrics L2T-ww records as
 * `<prefix><source layer>-><target layer>` (report.ts's formatLambdaTable
 * reads the same keys), per task and method.
 */
export function pairRows(records: readonly TrialRecord[], prefix = 'l2t_lambda:'): PairRow[] {
  const sums = new Map<string, Omit<PairRow, 'group' | 'value'> & { sum: number }>();
  for (const r of records) {
    if (r.status !== 'ok') continue;
    for (const [key, value] of Object.entries(r.metrics)) {
      if (!key.startsWith(prefix) || !Number.isFinite(value)) continue;
      const pair = key.slice(prefix.length);
      const cut = pair.indexOf('->');
      if (cut < 0) continue;
      const id = JSON.stringify([r.task, r.method, pair]);
      const acc = sums.get(id) ?? {
        task: r.task,
        method: r.method,
        source: pair.slice(0, cut),
        target: pair.slice(cut + 2),
        sum: 0,
        n: 0,
      };
      acc.sum += value;
      acc.n += 1;
      sums.set(id, acc);
    }
  }
  const all = [...sums.values()];
  const manyTasks = distinct(all.map((a) => a.task)).length > 1;
  return all.map(({ sum, ...a }) => ({
    group: manyTasks ? `${a.task} · ${a.method}` : a.method,
    ...a,
    value: sum / a.n,
  }));
}

/**
 * L2T-ww's learned λ per (source layer, target layer) pair, mean over seeds,
 * as a heat map per method (and task): rows source layers, columns target
 * layers, the value printed in each cell. `prefix` 'l2t_entropy:' draws the
 * "what" weights' entropy instead.
 */
export function lambdaHeatmap(
  records: readonly TrialRecord[],
  prefix = 'l2t_lambda:',
): VegaLiteSpec {
  const rows = pairRows(records, prefix);
  const sources = distinct(rows.map((r) => r.source));
  const targets = distinct(rows.map((r) => r.target));
  const values = rows.map((r) => r.value);
  // The colour scale starts at 0 (λ = 0: no transfer); cells past its middle are dark and get light text.
  const mid = values.length ? Math.max(0, ...values) / 2 : 0;
  const name = prefix === 'l2t_lambda:' ? 'learned λ' : prefix.replace(/[:_]+$/, '');
  const x = { field: 'target', type: 'nominal', sort: targets, title: 'target layer' } as const;
  const y = { field: 'source', type: 'nominal', sort: sources, title: 'source layer' } as const;
  return facetOrSingle(
    rows as unknown as Record<string, unknown>[],
    'group',
    distinct(rows.map((r) => r.group)),
    {
      width: { step: 56 },
      height: { step: 26 },
      layer: [
        {
          name: 'cells',
          mark: { type: 'rect' },
          encoding: {
            x,
            y,
            color: {
              field: 'value',
              type: 'quantitative',
              title: name,
              scale: { scheme: 'blues', zero: true },
            },
          },
        },
        {
          name: 'labels',
          mark: { type: 'text', fontSize: 10 },
          encoding: {
            x,
            y,
            text: { field: 'value', type: 'quantitative', format: '.2f' },
            color: {
              condition: { test: `datum.value > ${mid}`, value: 'white' },
              value: 'black',
            },
          },
        },
      ],
    },
    {
      kind: 'lambda',
      title: `L2T-ww ${name} per layer pair, mean over seeds`,
      subtitle: 'rows: source layer, columns: target layer',
    },
    true,
  );
}

/** Which metrics a prediction-vs-measurement chart plots. */
export interface TheoryAxes {
  /** The metric on the x axis, e.g. n_target, alpha or n. */
  x: string;
  /** The predicted metric, e.g. predicted_test_error. */
  predicted: string;
  /** The measured metric, e.g. measured_test_error. */
  measured: string;
  /** The measurement's standard error, e.g. measured_test_error_se: error bars at ±2 se. */
  measuredSe?: string;
}

/** One (panel, method, x) of a theory chart, averaged over seeds. */
export interface TheoryRow {
  panel: string;
  method: string;
  x: number;
  predicted: number | null;
  measured: number | null;
  /** Standard error of the seed mean: √(Σ se²)/k over the k seeds' independent estimates. */
  se: number | null;
  lo: number | null;
  hi: number | null;
  n: number;
}

/**
 * The task minus the part that names the x value: theory tasks are named
 * like `dF=0 dT=0 · n=25` or `α=0.100`, so what is left (`dF=0 dT=0`, or
 * nothing) is the panel a curve belongs to.
 */
export function panelOf(task: string, x: number): string {
  const parts = task.split(' · ');
  const kept = parts.filter((part) => {
    const m = /^[^\s=]+=\s*([-+]?\d*\.?\d+(?:e[-+]?\d+)?)$/i.exec(part.trim());
    if (!m) return true;
    const text = m[1] as string;
    const decimals = text.includes('.') && !/e/i.test(text) ? (text.split('.')[1]?.length ?? 0) : 0;
    // The name rounds x (α=0.123 for 0.12345): equal within half its last digit.
    return !(Math.abs(Number(text) - x) <= 0.5 * 10 ** -decimals + 1e-12 * Math.abs(x));
  });
  return kept.join(' · ');
}

/** Mean over seeds per (panel, method, x) of a predicted and a measured metric. */
export function theoryRows(records: readonly TrialRecord[], axes: TheoryAxes): TheoryRow[] {
  const groups = new Map<
    string,
    {
      panel: string;
      method: string;
      x: number;
      p: number[];
      m: number[];
      se: number[];
      seMissing: boolean;
    }
  >();
  for (const r of records) {
    const x = okValue(r, axes.x);
    if (x === undefined) continue;
    const p = okValue(r, axes.predicted);
    const m = okValue(r, axes.measured);
    if (p === undefined && m === undefined) continue;
    const panel = panelOf(r.task, x);
    const key = JSON.stringify([panel, r.method, x]);
    const g = groups.get(key) ?? {
      panel,
      method: r.method,
      x,
      p: [],
      m: [],
      se: [],
      seMissing: false,
    };
    if (p !== undefined) g.p.push(p);
    if (m !== undefined) {
      g.m.push(m);
      const se = axes.measuredSe ? okValue(r, axes.measuredSe) : undefined;
      if (se === undefined) g.seMissing = true;
      else g.se.push(se);
    }
    groups.set(key, g);
  }
  const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : null);
  const rows = [...groups.values()].map((g) => {
    const measured = mean(g.m);
    const se =
      measured === null || g.seMissing || g.se.length === 0
        ? null
        : Math.sqrt(g.se.reduce((a, s) => a + s * s, 0)) / g.se.length;
    return {
      panel: g.panel,
      method: g.method,
      x: g.x,
      predicted: mean(g.p),
      measured,
      se: se === null ? null : finiteOrNull(se),
      lo: se === null || measured === null ? null : measured - 2 * se,
      hi: se === null || measured === null ? null : measured + 2 * se,
      n: Math.max(g.p.length, g.m.length),
    };
  });
  return rows.sort((a, b) => a.x - b.x);
}

/**
 * A theory suite's prediction against Monte Carlo: x (e.g. n_target, alpha,
 * n) against the predicted value as a line and the measured value as points
 * with ±2 se error bars when a standard-error metric exists; a colour per
 * method, a panel per setting the task names besides x. A log x axis when x
 * spans a decade or more.
 */
export function predictedVsMeasuredChart(
  records: readonly TrialRecord[],
  axes: TheoryAxes,
): VegaLiteSpec {
  const rows = theoryRows(records, axes);
  const methods = distinct(rows.map((r) => r.method));
  const xs = rows.map((r) => r.x);
  const log = xs.length > 0 && Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) >= 10;
  const quantity = axes.measured.replace(/^measured_/, '');
  const ys = rows.flatMap((r) => [r.predicted, r.measured]).filter((v) => v !== null);
  const percent = isFraction(quantity, ys);
  const x = {
    field: 'x',
    type: 'quantitative',
    title: axes.x,
    scale: log ? ({ type: 'log', nice: false, padding: 8 } as const) : { zero: false, padding: 8 },
  } as const;
  const color = {
    field: 'method',
    type: 'nominal',
    scale: { domain: methods },
    title: null,
  } as const;
  const yAxis = { format: fmt(percent) };
  return facetOrSingle(
    rows as unknown as Record<string, unknown>[],
    'panel',
    distinct(rows.map((r) => r.panel)),
    {
      width: 260,
      height: 180,
      layer: [
        {
          name: 'predicted',
          transform: [{ filter: 'isValid(datum.predicted)' }],
          mark: { type: 'line', strokeWidth: 1.8 },
          encoding: {
            x,
            y: {
              field: 'predicted',
              type: 'quantitative',
              title: quantity,
              scale: { zero: false },
              axis: yAxis,
            },
            color,
          },
        },
        {
          name: 'se',
          transform: [{ filter: 'isValid(datum.lo)' }],
          mark: { type: 'rule', strokeWidth: 1.2 },
          encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color },
        },
        {
          name: 'measured',
          transform: [{ filter: 'isValid(datum.measured)' }],
          mark: { type: 'point', filled: true, size: 36 },
          encoding: { x, y: { field: 'measured', type: 'quantitative' }, color },
        },
      ],
    },
    {
      kind: 'theory',
      title: `${quantity}: predicted (line) vs measured (points${axes.measuredSe ? ' ± 2 se' : ''}), mean over seeds`,
      subtitle: `against ${axes.x}`,
    },
    false,
  );
}

/** The x metrics a theory suite varies, most specific first: chmm's n_target, the GCM's α, the linear model's n. */
const THEORY_X = ['n_target', 'alpha', 'n'];

/**
 * Every quantity Q with both `predicted_Q` and `measured_Q` in the records,
 * against the first of n_target, alpha, n that every such record has and
 * that takes two values or more; `measured_Q_se` for error bars when present.
 * Quantities with no such x (the TTA bound's per-task bars) are left out.
 */
export function theoryAxes(records: readonly TrialRecord[]): TheoryAxes[] {
  const keys = distinct(
    records.filter((r) => r.status === 'ok').flatMap((r) => Object.keys(r.metrics)),
  );
  const out: TheoryAxes[] = [];
  for (const key of keys) {
    if (!key.startsWith('predicted_')) continue;
    const quantity = key.slice('predicted_'.length);
    const measured = `measured_${quantity}`;
    if (!hasMetric(records, measured) || !hasMetric(records, key)) continue;
    const involved = records.filter(
      (r) => okValue(r, key) !== undefined || okValue(r, measured) !== undefined,
    );
    const x = THEORY_X.find(
      (m) =>
        involved.every((r) => okValue(r, m) !== undefined) &&
        distinct(involved.map((r) => okValue(r, m))).length > 1,
    );
    if (!x) continue;
    const se = `${measured}_se`;
    out.push({
      x,
      predicted: key,
      measured,
      ...(hasMetric(records, se) ? { measuredSe: se } : {}),
    });
  }
  return out;
}

/** The prediction-vs-measurement charts for whichever theory metrics the records have (none for others). */
export function theoryCharts(records: readonly TrialRecord[]): VegaLiteSpec[] {
  return theoryAxes(records).map((axes) => predictedVsMeasuredChart(records, axes));
}
