import { meanCI } from '@transferlab/evaluation';
import type { TrialRecord } from './results.js';

/**
 * A task × method table of `metric`: mean ± 95% CI half-width over seeds
 * (n in brackets when some seeds failed).
 */
export function formatTable(
  records: readonly TrialRecord[],
  metric = 'target_test_acc',
  asPercent = true,
): string {
  const tasks = [...new Set(records.map((r) => r.task))];
  const methods = [...new Set(records.map((r) => r.method))];
  const fmt = (v: number) => (asPercent ? (100 * v).toFixed(1) : v.toPrecision(4));
  const header = ['task', ...methods];
  const rows = tasks.map((task) => [
    task,
    ...methods.map((method) => {
      const all = records.filter((r) => r.task === task && r.method === method);
      const ok = all.filter((r) => r.status === 'ok' && typeof r.metrics[metric] === 'number');
      if (all.length === 0) return '';
      if (ok.length === 0) return `failed (${all.length})`;
      const s = meanCI(ok.map((r) => r.metrics[metric] as number));
      const ci = Number.isNaN(s.ci95) ? '' : ` ± ${fmt(s.ci95)}`;
      const n = ok.length < all.length ? ` [${ok.length}/${all.length} ok]` : '';
      return `${fmt(s.mean)}${ci}${n}`;
    }),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  const sep = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  const title = `${metric}${asPercent ? ' (%)' : ''}, mean ± 95% CI over seeds (n = ${new Set(records.map((r) => r.seed)).size})`;
  return [title, line(header), sep, ...rows.map(line)].join('\n');
}
