import { describe, expect, it } from 'vitest';
import type { TrialRecord } from '../results.js';
import { accuracyChart, chartKind } from './charts.js';
import { defaultReportSections, escapeHtml, renderHtmlReport } from './html.js';
import { countSvgMarks, expectedMarks, fixtureRecords } from './test-marks.js';

const rec = (task: string, method: string, seed: number, acc: number): TrialRecord => ({
  suite: 's',
  task,
  method,
  seed,
  status: 'ok',
  metrics: { target_test_acc: acc },
  durationMs: 1,
  backend: 'cpu',
});

/** The inline SVGs of a report, in order. */
const svgsOf = (html: string) => html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];

describe('renderHtmlReport', () => {
  it('escapes every string: titles, provenance, text and the names inside charts', async () => {
    const evil = '<img src=x onerror="alert(1)">';
    const records = [0, 1].flatMap((s) => [
      rec(`task ${evil}`, 'scratch', s, 0.5 + s / 10),
      rec(`task ${evil}`, `m</script><script>x()</script>`, s, 0.6),
    ]);
    const html = await renderHtmlReport(
      [
        {
          title: `section ${evil}`,
          text: '| a | b |\n</pre><script>bad()</script>',
          charts: [accuracyChart(records)],
        },
      ],
      {
        title: `report <script>alert(1)</script> & co`,
        provenance: { run: evil, seeds: 2, skip: undefined },
      },
    );
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<img/i);
    expect(html).toContain('<title>report &lt;script&gt;alert(1)&lt;/script&gt; &amp; co</title>');
    expect(html).toContain(`<h2>section ${escapeHtml(evil)}</h2>`);
    expect(html).toContain('<pre>| a | b |\n&lt;/pre&gt;&lt;script&gt;bad()&lt;/script&gt;</pre>');
    expect(html).toContain(`<dt>run</dt><dd>${escapeHtml(evil)}</dd>`);
    expect(html).toContain('<dt>seeds</dt><dd>2</dd>');
    expect(html).not.toContain('skip');
    // Vega escaped the task name it drew as a facet title.
    expect(html).toContain('task &lt;img src=x');
  });

  it('is self-contained: inline SVG and CSS, no script, no URL, a CSP that forbids loading', async () => {
    const quick = fixtureRecords('quick');
    const html = await renderHtmlReport(defaultReportSections(quick), {
      title: 'quick',
      provenance: 'fixture: 18 records of pnpm bench run quick',
    });
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/https?:|\/\/[a-z]/i);
    expect(html).not.toMatch(/<(script|link|img|iframe|object)\b/i);
    expect(html).not.toMatch(/\b(src|href)=/i);
    expect(html).toContain(
      `content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"`,
    );
    expect(html).toContain('<p class="provenance">fixture: 18 records of pnpm bench run quick</p>');
    const svgs = svgsOf(html);
    expect(svgs).toHaveLength(3);
    expect(html.match(/<figure class="chart" data-chart="(\w+)"/g)).toEqual([
      '<figure class="chart" data-chart="accuracy"',
      '<figure class="chart" data-chart="paired"',
      '<figure class="chart" data-chart="curves"',
    ]);
    // 2 tasks × 3 methods: 6 bars with 6 CIs; 2 × 2 paired points; 6 mean curves.
    expect(countSvgMarks(svgs[0] as string)).toEqual({ bars: 6, ci: 6 });
    expect(countSvgMarks(svgs[1] as string)).toEqual({ zero: 2, ci: 4, points: 4 });
    expect(countSvgMarks(svgs[2] as string)).toEqual({ lines: 6 });
    // The tables made here (no summaryText given) sit in <pre>.
    expect(html).toMatch(/<pre>target_test_acc \(%\), mean ± 95% CI over seeds \(n = 3\)/);
    expect(html).toContain('paired difference in target_test_acc (points) against scratch');
  });
});

describe('defaultReportSections', () => {
  const kinds = (records: TrialRecord[], opts = {}) =>
    defaultReportSections(records, opts).map((s) => [s.title, s.charts.map((c) => chartKind(c))]);

  it('picks accuracy, paired against scratch and curves for a transfer suite', () => {
    expect(kinds(fixtureRecords('quick'))).toEqual([
      ['target_test_acc', ['accuracy']],
      ['Paired differences against scratch', ['paired']],
      ['Learning curves', ['curves']],
    ]);
  });

  it('pairs against fine-tune when no scratch ran (the regularisers suite)', () => {
    const noScratch = fixtureRecords('quick').filter((r) => r.method !== 'scratch');
    const sections = defaultReportSections(noScratch);
    expect(sections[1]?.title).toBe('Paired differences against fine-tune');
    expect(sections[1]?.text).toContain('linear-probe − fine-tune');
  });

  it('adds the λ heat map for L2T-ww and theory charts for theory suites', () => {
    expect(kinds(fixtureRecords('l2t-ww'))).toEqual([
      ['target_test_acc', ['accuracy']],
      ['Paired differences against scratch', ['paired']],
      ['Learning curves', ['curves']],
      ['L2T-ww: where to transfer', ['lambda']],
    ]);
    const chmm = defaultReportSections(fixtureRecords('theory-chmm-quick'));
    expect(chmm.map((s) => s.title)).toEqual(['Prediction vs Monte Carlo']);
    expect(chmm[0]?.text).toContain('prediction vs Monte Carlo: share of pairs');
    expect(kinds(fixtureRecords('theory-linear'))).toEqual([
      ['Prediction vs Monte Carlo', ['theory']],
    ]);
  });

  it('puts the CLI summary in the first section and refuses an unknown metric given explicitly', () => {
    const sections = defaultReportSections(fixtureRecords('quick'), { summaryText: 'TABLES' });
    expect(sections.map((s) => s.text)).toEqual(['TABLES', undefined, undefined]);
    expect(() => defaultReportSections(fixtureRecords('quick'), { metric: 'nope' })).toThrow(
      /unknown metric "nope"/,
    );
    const loss = defaultReportSections(fixtureRecords('quick'), { metric: 'target_test_loss' });
    expect(chartKind(loss[0]?.charts[0] as never)).toBe('accuracy');
    expect(loss[0]?.text).toMatch(/^target_test_loss, mean/);
    // No summary, no chart: still a section for the text.
    expect(defaultReportSections([], { summaryText: 'nothing ran' })).toEqual([
      { title: 'Summary', charts: [], text: 'nothing ran' },
    ]);
  });

  it('renders every default chart of every fixture with the marks its rows call for', async () => {
    for (const name of ['quick', 'l2t-ww', 'theory-chmm-quick', 'theory-linear']) {
      const charts = defaultReportSections(fixtureRecords(name)).flatMap((s) => s.charts);
      const html = await renderHtmlReport([{ title: name, charts }], { title: name });
      const svgs = svgsOf(html);
      expect(svgs).toHaveLength(charts.length);
      charts.forEach((spec, i) => {
        expect(countSvgMarks(svgs[i] as string), `${name} chart ${i}`).toEqual(expectedMarks(spec));
      });
    }
  });
});
