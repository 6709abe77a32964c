import { meanCI } from '@transferlab/evaluation';
import type { TrialRecord } from './results.js';

/**
 * Refuse a metric no ok record has: every cell would otherwise read
 * `failed (n)`, which blames the trials for a typo.
 */
export function requireMetric(records: readonly TrialRecord[], metric: string): void {
  const present = new Set<string>();
  for (const r of records)
    if (r.status === 'ok') for (const k of Object.keys(r.metrics)) present.add(k);
  if (!present.has(metric))
    throw new Error(
      `unknown metric "${metric}". Metrics in these records: ${[...present].sort().join(', ') || '(none: no ok records)'}`,
    );
}

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

/**
 * Paired differences against a baseline method: for each task × method, the
 * mean over seeds of (method − baseline) on the same seed's split, with its
 * 95% CI. Seeds change the target split, which moves every method together;
 * pairing removes that shared variation.
 */
export function formatPairedTable(
  records: readonly TrialRecord[],
  baseline = 'scratch',
  metric = 'target_test_acc',
  asPercent = true,
): string {
  const ok = records.filter((r) => r.status === 'ok' && typeof r.metrics[metric] === 'number');
  const tasks = [...new Set(records.map((r) => r.task))];
  const methods = [...new Set(records.map((r) => r.method))].filter((m) => m !== baseline);
  if (!records.some((r) => r.method === baseline) || methods.length === 0) return '';
  const fmt = (v: number) => (asPercent ? (100 * v).toFixed(1) : v.toPrecision(4));
  const header = ['task', ...methods.map((m) => `${m} − ${baseline}`)];
  const rows = tasks.map((task) => [
    task,
    ...methods.map((method) => {
      const diffs: number[] = [];
      for (const r of ok.filter((x) => x.task === task && x.method === method)) {
        const base = ok.find((x) => x.task === task && x.method === baseline && x.seed === r.seed);
        if (base) diffs.push((r.metrics[metric] as number) - (base.metrics[metric] as number));
      }
      if (diffs.length === 0) return '';
      const s = meanCI(diffs);
      const sign = s.mean >= 0 ? '+' : '';
      return `${sign}${fmt(s.mean)}${Number.isNaN(s.ci95) ? '' : ` ± ${fmt(s.ci95)}`}`;
    }),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  const sep = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  const title = `paired difference in ${metric}${asPercent ? ' (points)' : ''} against ${baseline}, same seed and split, mean ± 95% CI`;
  return [title, line(header), sep, ...rows.map(line)].join('\n');
}

/**
 * L2T-ww's meta-networks as heat maps in text, mean over seeds for each
 * (source layer, target layer) pair: the learned "where" weight λ (metrics
 * `l2t_lambda:<src>-><tgt>`) and the entropy of the learned "what" channel
 * weights over log C (`l2t_entropy:<src>-><tgt>`; 1 = uniform).
 */
export function formatLambdaTable(records: readonly TrialRecord[]): string {
  return [
    pairHeatMap(
      records,
      'l2t_lambda:',
      'L2T-ww learned λ (where to transfer), mean over seeds: rows = source layer, columns = target layer',
    ),
    pairHeatMap(
      records,
      'l2t_entropy:',
      'L2T-ww channel weights (what to transfer): entropy / log C, mean over seeds (1 = uniform)',
    ),
  ]
    .filter((t) => t !== '')
    .join('\n\n');
}

function pairHeatMap(records: readonly TrialRecord[], prefix: string, title: string): string {
  const sums = new Map<string, { sum: number; n: number }>();
  for (const r of records) {
    if (r.status !== 'ok') continue;
    for (const [key, value] of Object.entries(r.metrics)) {
      if (!key.startsWith(prefix) || !Number.isFinite(value)) continue;
      const pair = key.slice(prefix.length);
      const acc = sums.get(pair) ?? { sum: 0, n: 0 };
      acc.sum += value;
      acc.n += 1;
      sums.set(pair, acc);
    }
  }
  if (sums.size === 0) return '';
  const pairs = [...sums.keys()].map((p) => p.split('->') as [string, string]);
  const sources = [...new Set(pairs.map((p) => p[0]))];
  const targets = [...new Set(pairs.map((p) => p[1]))];
  const lines = [
    title,
    `| source \\ target | ${targets.join(' | ')} |`,
    `|---|${targets.map(() => '---').join('|')}|`,
  ];
  for (const src of sources) {
    const cells = targets.map((tgt) => {
      const acc = sums.get(`${src}->${tgt}`);
      return acc ? (acc.sum / acc.n).toFixed(3) : '';
    });
    lines.push(`| ${src} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** One predicted/measured pair of a theory suite: `predicted_X` beside `measured_X` ± `measured_X_se`. */
export interface PredictionPair {
  record: TrialRecord;
  quantity: string;
  predicted: number;
  measured: number;
  se: number;
  /** (predicted − measured)/se. */
  z: number;
}

/** Every pair in `records` with a finite prediction, measurement and positive standard error. */
export function predictionPairs(records: readonly TrialRecord[]): PredictionPair[] {
  const out: PredictionPair[] = [];
  for (const record of records) {
    if (record.status !== 'ok') continue;
    for (const [key, predicted] of Object.entries(record.metrics)) {
      if (!key.startsWith('predicted_')) continue;
      const quantity = key.slice('predicted_'.length);
      const measured = record.metrics[`measured_${quantity}`];
      const se = record.metrics[`measured_${quantity}_se`];
      if (
        typeof measured !== 'number' ||
        typeof se !== 'number' ||
        !Number.isFinite(predicted) ||
        !Number.isFinite(measured) ||
        !(se > 0)
      )
        continue;
      out.push({ record, quantity, predicted, measured, se, z: (predicted - measured) / se });
    }
  }
  return out;
}

/**
 * How well predictions agree with Monte Carlo, per method: the number of
 * pairs, the share within 1, 2 and 3 standard errors of the measurement
 * (for a correct prediction and Gaussian noise: 68%, 95%, 99.7%), the median
 * |z|, and the pairs furthest out as prediction beside measured ± se.
 */
export function formatAgreement(records: readonly TrialRecord[], worst = 5): string {
  const pairs = predictionPairs(records);
  if (pairs.length === 0) return '';
  const pct = (k: number, n: number) => `${((100 * k) / n).toFixed(0)}%`;
  const row = (label: string, ps: PredictionPair[]) => {
    const abs = ps.map((p) => Math.abs(p.z)).sort((a, b) => a - b);
    const within = (t: number) => abs.filter((z) => z <= t).length;
    const mid = abs.length >> 1;
    const median =
      abs.length % 2 === 1
        ? (abs[mid] as number)
        : 0.5 * ((abs[mid - 1] as number) + (abs[mid] as number));
    return `| ${label} | ${ps.length} | ${pct(within(1), ps.length)} | ${pct(within(2), ps.length)} | ${within(3)} (${pct(within(3), ps.length)}) | ${median.toFixed(2)} |`;
  };
  const methods = [...new Set(pairs.map((p) => p.record.method))];
  const lines = [
    'prediction vs Monte Carlo: share of pairs within k standard errors of the measurement (z = (predicted − measured)/se)',
    '| method | pairs | ≤ 1 se | ≤ 2 se | ≤ 3 se | median abs(z) |',
    '|---|---|---|---|---|---|',
    ...(methods.length > 1
      ? methods.map((m) =>
          row(
            m,
            pairs.filter((p) => p.record.method === m),
          ),
        )
      : []),
    row('all', pairs),
  ];
  const out = [...pairs].sort((a, b) => Math.abs(b.z) - Math.abs(a.z)).slice(0, worst);
  const g = (v: number) => v.toPrecision(4);
  if (out.length > 0 && Math.abs(out[0]?.z as number) > 3) {
    lines.push('', 'furthest pairs: predicted vs measured ± se');
    for (const p of out.filter((q) => Math.abs(q.z) > 3))
      lines.push(
        `  ${p.record.task} · ${p.record.method} · seed ${p.record.seed}: ${p.quantity} ${g(p.predicted)} vs ${g(p.measured)} ± ${g(p.se)} (z = ${p.z.toFixed(1)})`,
      );
  }
  return lines.join('\n');
}
