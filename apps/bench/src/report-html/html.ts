import * as vega from 'vega';
import { compile } from 'vega-lite';
import {
  formatAgreement,
  formatLambdaTable,
  formatPairedTable,
  formatTable,
  requireMetric,
} from '../report.js';
import type { TrialRecord } from '../results.js';
import {
  accuracyChart,
  chartKind,
  curvesChart,
  lambdaHeatmap,
  pairedChart,
  theoryCharts,
  type VegaLiteSpec,
} from './charts.js';
import { hasMetric, pairedRows } from './stats.js';

/** One part of a report: a heading, optional preformatted text (the Markdown tables), charts. */
export interface ReportSection {
  title: string;
  text?: string;
  charts: VegaLiteSpec[];
}

/** Where the records came from, shown under the title: a line, or labelled values. */
export type Provenance = string | Record<string, string | number | boolean | undefined>;

export interface HtmlReportOptions {
  title: string;
  provenance?: Provenance;
}

/** Text as HTML text or attribute value: the five characters HTML gives meaning to. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/**
 * A Vega-Lite spec as an SVG string, rendered headless (vega's `none`
 * renderer: no canvas, no DOM). Vega escapes the text it writes.
 */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * The namespace declarations are identifiers, not links, but inside HTML the
 * parser puts <svg> in the SVG namespace by itself; dropping them keeps the
 * file free of anything that looks like an external URL.
 */
function inlineSvg(svg: string): string {
  return svg.replace(/^<svg([^>]*)>/, (_, attrs: string) => {
    const kept = attrs.replace(/\s+xmlns(:\w+)?="[^"]*"/g, '');
    return `<svg${kept}>`;
  });
}

const CSS = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.6em; margin: 0 0 8px; }
h2 { font-size: 1.2em; margin: 32px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
dl.provenance { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0 0 12px; color: #555; font-size: 0.92em; }
dl.provenance dt { font-weight: 600; }
dl.provenance dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; }
p.provenance { color: #555; margin: 0 0 12px; }
pre { background: #fff; border: 1px solid #e2e2e2; border-radius: 4px; padding: 10px 12px; overflow-x: auto; font: 12px/1.4 ui-monospace, Menlo, Consolas, monospace; }
figure.chart { background: #fff; border: 1px solid #e2e2e2; border-radius: 4px; margin: 12px 0; padding: 8px; overflow-x: auto; }
figure.chart svg { display: block; max-width: none; }
`;

function provenanceHtml(p: Provenance | undefined): string {
  if (p === undefined) return '';
  if (typeof p === 'string') return `<p class="provenance">${escapeHtml(p)}</p>`;
  const items = Object.entries(p).filter(([, v]) => v !== undefined);
  if (items.length === 0) return '';
  const rows = items.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(String(v))}</dd>`);
  return `<dl class="provenance">${rows.join('')}</dl>`;
}

/**
 * One self-contained HTML file: inline CSS, each chart an inline SVG rendered
 * here, each section's text in a <pre>, every string escaped. It needs no
 * script and loads nothing; the Content-Security-Policy says so to the browser.
 * Each chart's <figure> carries `data-chart` (its kind) and `data-index`.
 */
export async function renderHtmlReport(
  sections: readonly ReportSection[],
  opts: HtmlReportOptions,
): Promise<string> {
  const parts: string[] = [];
  let index = 0;
  for (const section of sections) {
    parts.push(`<section>\n<h2>${escapeHtml(section.title)}</h2>`);
    if (section.text) parts.push(`<pre>${escapeHtml(section.text)}</pre>`);
    for (const spec of section.charts) {
      const svg = inlineSvg(await renderSvg(spec));
      const kind = chartKind(spec) ?? 'chart';
      parts.push(
        `<figure class="chart" data-chart="${escapeHtml(kind)}" data-index="${index}">${svg}</figure>`,
      );
      index++;
    }
    parts.push('</section>');
  }
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(opts.title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    '<main>',
    `<h1>${escapeHtml(opts.title)}</h1>`,
    provenanceHtml(opts.provenance),
    ...parts,
    '</main>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

export interface DefaultSectionsOptions {
  /** The metric of the accuracy and paired charts (default target_test_acc; an unknown one given explicitly is an error). */
  metric?: string;
  /** The tables the CLI printed; shown in the first section instead of tables made here. */
  summaryText?: string;
}

/**
 * The sections a results file calls for: the metric per method and, against
 * scratch (or fine-tune when no scratch ran), the paired differences; the
 * learning curves when records carry them; L2T-ww's λ heat map when present;
 * the prediction-vs-measurement charts of theory suites.
 */
export function defaultReportSections(
  records: readonly TrialRecord[],
  opts: DefaultSectionsOptions = {},
): ReportSection[] {
  const metric = opts.metric ?? 'target_test_acc';
  if (opts.metric !== undefined) requireMetric(records, metric);
  const asPercent = /acc/.test(metric);
  const sections: ReportSection[] = [];
  const own = opts.summaryText === undefined;

  if (hasMetric(records, metric)) {
    sections.push({
      title: metric,
      ...(own ? { text: formatTable(records, metric, asPercent) } : {}),
      charts: [accuracyChart(records, metric)],
    });
    const methods = new Set(records.map((r) => r.method));
    const baseline = methods.has('scratch')
      ? 'scratch'
      : methods.has('fine-tune')
        ? 'fine-tune'
        : undefined;
    if (baseline && pairedRows(records, baseline, metric).length > 0)
      sections.push({
        title: `Paired differences against ${baseline}`,
        ...(own ? { text: formatPairedTable(records, baseline, metric, asPercent) } : {}),
        charts: [pairedChart(records, baseline, metric)],
      });
  }
  if (records.some((r) => r.status === 'ok' && (r.curve?.length ?? 0) > 0))
    sections.push({ title: 'Learning curves', charts: [curvesChart(records)] });
  if (
    records.some(
      (r) => r.status === 'ok' && Object.keys(r.metrics).some((k) => k.startsWith('l2t_lambda:')),
    )
  )
    sections.push({
      title: 'L2T-ww: where to transfer',
      ...(own ? { text: formatLambdaTable(records) } : {}),
      charts: [lambdaHeatmap(records)],
    });
  const theory = theoryCharts(records);
  if (theory.length > 0) {
    const agreement = own ? formatAgreement(records) : '';
    sections.push({
      title: 'Prediction vs Monte Carlo',
      ...(agreement ? { text: agreement } : {}),
      charts: theory,
    });
  }

  if (!own) {
    if (sections.length === 0) sections.push({ title: 'Summary', charts: [] });
    (sections[0] as ReportSection).text = opts.summaryText;
  }
  return sections;
}
