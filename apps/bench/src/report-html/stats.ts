import { meanCI } from '@transferlab/evaluation';
import type { TrialRecord } from '../results.js';

/** Distinct values in first-seen order: tables and charts list tasks and methods as the suite ran them. */
export function distinct<T>(values: Iterable<T>): T[] {
  return [...new Set(values)];
}

/** The value of `metric` in an ok record, or undefined when it failed or lacks a finite value. */
export function okValue(record: TrialRecord, metric: string): number | undefined {
  if (record.status !== 'ok') return undefined;
  const v = record.metrics[metric];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Whether any ok record has a finite `metric`. */
export function hasMetric(records: readonly TrialRecord[], metric: string): boolean {
  return records.some((r) => okValue(r, metric) !== undefined);
}

/** NaN (one value: no CI) becomes null, which JSON, CSV and Vega all read as missing. */
export function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

/** One (task, method) cell: mean ± 95% CI half-width of `metric` over its ok seeds. */
export interface SummaryRow {
  task: string;
  method: string;
  metric: string;
  /** Ok trials with a finite value of the metric. */
  n: number;
  /** Null when n = 0. */
  mean: number | null;
  /** Student-t half-width (meanCI); null when n < 2. */
  ci95: number | null;
  /** Trials whose status is failed. */
  n_failed: number;
}

/** Per (task, method) present in the records, in first-seen order, the mean ± 95% CI of `metric`. */
export function summaryRows(records: readonly TrialRecord[], metric: string): SummaryRow[] {
  const rows: SummaryRow[] = [];
  for (const task of distinct(records.map((r) => r.task))) {
    const ofTask = records.filter((r) => r.task === task);
    for (const method of distinct(ofTask.map((r) => r.method))) {
      const all = ofTask.filter((r) => r.method === method);
      const values = all.map((r) => okValue(r, metric)).filter((v) => v !== undefined);
      const s = values.length > 0 ? meanCI(values) : undefined;
      rows.push({
        task,
        method,
        metric,
        n: values.length,
        mean: s ? s.mean : null,
        ci95: s ? finiteOrNull(s.ci95) : null,
        n_failed: all.filter((r) => r.status === 'failed').length,
      });
    }
  }
  return rows;
}

/** One (task, method): the mean over seeds of method − baseline on the same seed, ± 95% CI. */
export interface PairedRow {
  task: string;
  method: string;
  baseline: string;
  metric: string;
  /** Seeds where both the method and the baseline have an ok value. */
  n: number;
  mean: number;
  ci95: number | null;
}

/**
 * Paired differences against `baseline`, as report.ts's table: a seed draws
 * the target split, which moves every method together, and pairing on it
 * removes that shared variation. A seed that appears twice (files that
 * accumulate runs) pairs with its first baseline record.
 */
export function pairedRows(
  records: readonly TrialRecord[],
  baseline: string,
  metric: string,
): PairedRow[] {
  const rows: PairedRow[] = [];
  for (const task of distinct(records.map((r) => r.task))) {
    const ofTask = records.filter((r) => r.task === task);
    const base = new Map<number, number>();
    for (const r of ofTask) {
      const v = r.method === baseline ? okValue(r, metric) : undefined;
      if (v !== undefined && !base.has(r.seed)) base.set(r.seed, v);
    }
    for (const method of distinct(ofTask.map((r) => r.method))) {
      if (method === baseline) continue;
      const diffs: number[] = [];
      for (const r of ofTask) {
        if (r.method !== method) continue;
        const v = okValue(r, metric);
        const b = base.get(r.seed);
        if (v !== undefined && b !== undefined) diffs.push(v - b);
      }
      if (diffs.length === 0) continue;
      const s = meanCI(diffs);
      rows.push({
        task,
        method,
        baseline,
        metric,
        n: diffs.length,
        mean: s.mean,
        ci95: finiteOrNull(s.ci95),
      });
    }
  }
  return rows;
}

/** Accuracies and error rates are fractions: charts show them as percentages. */
export function isFraction(metric: string, values: readonly number[]): boolean {
  return /acc|error/.test(metric) && values.every((v) => v >= 0 && v <= 1);
}
