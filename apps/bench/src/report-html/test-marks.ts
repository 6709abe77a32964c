/**
 * Test helpers shared by the chart, HTML and browser tests: how many marks
 * each named layer of a chart should draw, and how many a rendered SVG has.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readRecords, type TrialRecord } from '../results.js';
import { chartKind, chartRows, type VegaLiteSpec } from './charts.js';

/** Records of a fixture file in ./fixtures (real lines copied from suite runs). */
export function fixtureRecords(name: string): TrialRecord[] {
  const path = fileURLToPath(new URL(`./fixtures/${name}.jsonl`, import.meta.url));
  readFileSync(path); // fail with the path, not a vaguer message, when it is missing
  return readRecords(path, (m) => {
    throw new Error(m);
  });
}

const count = (rows: Record<string, unknown>[], keep: (r: Record<string, unknown>) => boolean) =>
  rows.filter(keep).length;
const series = (rows: Record<string, unknown>[], a: string, b: string) =>
  new Set(rows.map((r) => JSON.stringify([r[a], r[b]]))).size;

/**
 * Marks per layer name that a spec from charts.ts draws, from its inline
 * rows: one bar / point / cell per row, one line per series, one CI rule per
 * row with a CI, one zero rule per panel.
 */
export function expectedMarks(spec: VegaLiteSpec): Record<string, number> {
  const rows = chartRows<Record<string, unknown>>(spec);
  const withCI = count(rows, (r) => r.lo !== null && r.lo !== undefined);
  switch (chartKind(spec)) {
    case 'accuracy':
      return { bars: rows.length, ci: withCI };
    case 'paired':
      return { zero: new Set(rows.map((r) => r.task)).size, ci: withCI, points: rows.length };
    case 'curves':
      return { lines: series(rows, 'task', 'method') };
    case 'lambda':
      return { cells: rows.length, labels: rows.length };
    case 'theory':
      return {
        predicted: series(
          rows.filter((r) => r.predicted !== null),
          'panel',
          'method',
        ),
        se: withCI,
        measured: count(rows, (r) => r.measured !== null),
      };
    default:
      throw new Error('not a chart from charts.ts');
  }
}

/**
 * Marks per layer name in an SVG from vega: each layer is a
 * `<g class="mark-… role-mark <name>_marks">` per panel whose children are
 * the marks (path, line or text); summed over panels.
 */
export function countSvgMarks(svg: string): Record<string, number> {
  const out: Record<string, number> = {};
  const open = /<g class="mark-\w+ role-mark ([\w-]+)_marks"[^>]*>/g;
  for (let m = open.exec(svg); m !== null; m = open.exec(svg)) {
    const name = m[1] as string;
    // A panel with nothing to draw is a self-closing <g …/>.
    const start = m.index + m[0].length;
    const body = m[0].endsWith('/>') ? '' : svg.slice(start, svg.indexOf('</g>', start));
    out[name] = (out[name] ?? 0) + (body.match(/<(path|line|text)\b/g)?.length ?? 0);
  }
  return out;
}
