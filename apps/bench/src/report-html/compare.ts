import { meanCI, tQuantile975 } from '@transferlab/evaluation';
import type { TrialRecord } from '../results.js';
import { distinct, finiteOrNull, okValue } from './stats.js';

/**
 * How a row's CI was made: `paired` on seed (both runs have the same seeds,
 * each once: the mean of the per-seed differences), `welch` (unpaired:
 * Welch–Satterthwaite), or `none` (a side has no ok trial).
 */
export type CompareKind = 'paired' | 'welch' | 'none';

/** One task × method present in both runs. */
export interface CompareRow {
  task: string;
  method: string;
  metric: string;
  /** Ok trials with a finite value, in A and B. */
  nA: number;
  nB: number;
  meanA: number | null;
  meanB: number | null;
  /** B − A: the mean paired difference, or the difference of means. */
  diff: number | null;
  /** 95% CI half-width of diff; null when too few trials. */
  ci95: number | null;
  kind: CompareKind;
  /** Seeds paired (paired rows only). */
  pairs?: number;
  /** Why a row is not paired when it could look as if it should be. */
  note?: string;
}

export interface TaskMethod {
  task: string;
  method: string;
}

export interface CompareResult {
  metric: string;
  rows: CompareRow[];
  /** Task × method with records in A only, and in B only: listed, not dropped. */
  onlyA: TaskMethod[];
  onlyB: TaskMethod[];
}

/** Seed → value of one side; undefined when some seed appears twice (pairing would be a guess). */
function bySeed(records: readonly TrialRecord[], metric: string): Map<number, number> | undefined {
  const out = new Map<number, number>();
  for (const r of records) {
    const v = okValue(r, metric);
    if (v === undefined) continue;
    if (out.has(r.seed)) return undefined;
    out.set(r.seed, v);
  }
  return out;
}

function sampleVariance(values: readonly number[], mean: number): number {
  return values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1);
}

/**
 * Welch's unpaired 95% CI half-width of mean(b) − mean(a): the Student t
 * quantile at the Welch–Satterthwaite degrees of freedom, rounded down (the
 * t table is by integer df; rounding down widens the interval a little).
 */
export function welchCI(a: readonly number[], b: readonly number[]): number | null {
  if (a.length < 2 || b.length < 2) return null;
  const ma = a.reduce((s, v) => s + v, 0) / a.length;
  const mb = b.reduce((s, v) => s + v, 0) / b.length;
  const qa = sampleVariance(a, ma) / a.length;
  const qb = sampleVariance(b, mb) / b.length;
  const se2 = qa + qb;
  if (se2 === 0) return 0;
  const df = se2 ** 2 / (qa ** 2 / (a.length - 1) + qb ** 2 / (b.length - 1));
  return tQuantile975(Math.max(1, Math.floor(df))) * Math.sqrt(se2);
}

/**
 * Run B against run A on `metric`, per task × method present in both:
 * mean A, mean B and B − A with its 95% CI — paired on seed when both sides
 * have exactly the same seeds (each once), else Welch's unpaired interval.
 */
export function compareRuns(
  a: readonly TrialRecord[],
  b: readonly TrialRecord[],
  metric = 'target_test_acc',
): CompareResult {
  const key = (r: TaskMethod) => JSON.stringify([r.task, r.method]);
  const cells = (rs: readonly TrialRecord[]) =>
    distinct(rs.map((r) => key(r))).map((k) => {
      const [task, method] = JSON.parse(k) as [string, string];
      return { task, method };
    });
  const inA = cells(a);
  const inB = cells(b);
  const keysA = new Set(inA.map(key));
  const keysB = new Set(inB.map(key));
  const rows: CompareRow[] = [];
  for (const cell of inA) {
    if (!keysB.has(key(cell))) continue;
    const sideA = a.filter((r) => r.task === cell.task && r.method === cell.method);
    const sideB = b.filter((r) => r.task === cell.task && r.method === cell.method);
    const va = sideA.map((r) => okValue(r, metric)).filter((v) => v !== undefined);
    const vb = sideB.map((r) => okValue(r, metric)).filter((v) => v !== undefined);
    const base = { ...cell, metric, nA: va.length, nB: vb.length };
    if (va.length === 0 || vb.length === 0) {
      rows.push({
        ...base,
        meanA: va.length ? meanCI(va).mean : null,
        meanB: vb.length ? meanCI(vb).mean : null,
        diff: null,
        ci95: null,
        kind: 'none',
        note: `no ok trial in ${va.length === 0 ? 'A' : 'B'}`,
      });
      continue;
    }
    const meanA = meanCI(va).mean;
    const meanB = meanCI(vb).mean;
    const sa = bySeed(sideA, metric);
    const sb = bySeed(sideB, metric);
    const sameSeeds =
      sa !== undefined &&
      sb !== undefined &&
      sa.size === sb.size &&
      [...sa.keys()].every((s) => sb.has(s));
    if (sameSeeds) {
      const diffs = [...sa.entries()].map(([seed, v]) => (sb.get(seed) as number) - v);
      const s = meanCI(diffs);
      rows.push({
        ...base,
        meanA,
        meanB,
        diff: s.mean,
        ci95: finiteOrNull(s.ci95),
        kind: 'paired',
        pairs: diffs.length,
      });
    } else {
      rows.push({
        ...base,
        meanA,
        meanB,
        diff: meanB - meanA,
        ci95: welchCI(va, vb),
        kind: 'welch',
        note:
          sa === undefined || sb === undefined
            ? 'a seed appears twice on one side'
            : 'the runs have different seeds',
      });
    }
  }
  return {
    metric,
    rows,
    onlyA: inA.filter((c) => !keysB.has(key(c))),
    onlyB: inB.filter((c) => !keysA.has(key(c))),
  };
}

/**
 * The comparison as a Markdown table (percentages for accuracy-like metrics,
 * as report.ts), then the task × method cells only one run has.
 */
export function formatCompare(
  result: CompareResult,
  asPercent = /acc/.test(result.metric),
): string {
  const { metric, rows } = result;
  const f = (v: number) => (asPercent ? (100 * v).toFixed(1) : v.toPrecision(4));
  const side = (m: number | null, n: number) =>
    m === null ? `– (n = ${n})` : `${f(m)} (n = ${n})`;
  const lines = [
    `${metric}${asPercent ? ' (%)' : ''}: run B − run A, mean ± 95% CI (paired: same seeds, mean of per-seed differences; welch: unpaired)`,
    '| task | method | A | B | B − A | CI |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => {
      const diff =
        r.diff === null
          ? '–'
          : `${r.diff >= 0 ? '+' : ''}${f(r.diff)}${r.ci95 === null ? '' : ` ± ${f(r.ci95)}`}`;
      const kind =
        r.kind === 'paired'
          ? `paired (${r.pairs} seeds)`
          : `${r.kind}${r.note ? `: ${r.note}` : ''}`;
      return `| ${cell(r.task)} | ${cell(r.method)} | ${side(r.meanA, r.nA)} | ${side(r.meanB, r.nB)} | ${diff} | ${kind} |`;
    }),
  ];
  const list = (cells: TaskMethod[]) => cells.map((c) => `${c.task} · ${c.method}`).join(', ');
  if (result.onlyA.length > 0) lines.push('', `only in A: ${list(result.onlyA)}`);
  if (result.onlyB.length > 0) lines.push('', `only in B: ${list(result.onlyB)}`);
  return lines.join('\n');
}

/** A pipe inside a cell would split it. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}
