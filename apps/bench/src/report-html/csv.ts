import type { TrialRecord } from '../results.js';
import { type SummaryRow, summaryRows } from './stats.js';

export type { SummaryRow } from './stats.js';

const COLUMNS = ['task', 'method', 'metric', 'n', 'mean', 'ci95', 'n_failed'] as const;

/** One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break; quotes doubled. */
export function csvField(value: string | number | null): string {
  if (value === null) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * Per (task, method), in the order the suite ran them: n ok trials with the
 * metric, their mean and 95% CI half-width (meanCI; empty when n < 2, mean
 * empty when n = 0), and the number of failed trials. RFC 4180: a header
 * row, CRLF line ends, numbers at full precision.
 */
export function formatCsv(records: readonly TrialRecord[], metric = 'target_test_acc'): string {
  const rows = summaryRows(records, metric);
  const lines = [
    COLUMNS.join(','),
    ...rows.map((r) => COLUMNS.map((c) => csvField(r[c])).join(',')),
  ];
  return `${lines.join('\r\n')}\r\n`;
}

/** The CSV's rows as an object, for `--json`: missing numbers are null. */
export interface SummaryJson {
  metric: string;
  rows: SummaryRow[];
}

export function summaryJson(
  records: readonly TrialRecord[],
  metric = 'target_test_acc',
): SummaryJson {
  return { metric, rows: summaryRows(records, metric) };
}
