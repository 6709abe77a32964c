/**
 * The HTML report as a reader sees it: written to a file, opened from disk in
 * Debian's Chromium (headless, driven by playwright-core), checked for
 * console and page errors, requests, drawn marks per chart, and a screenshot.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import type { VegaLiteSpec } from './charts.js';
import { defaultReportSections, type ReportSection, renderHtmlReport } from './html.js';
import { expectedMarks, fixtureRecords } from './test-marks.js';

// Debian's Chromium; the variable exists to check the skip and the CI failure without uninstalling it.
const CHROMIUM = process.env.TRANSFERLAB_CHROMIUM || '/usr/bin/chromium';
const present = existsSync(CHROMIUM);
const ci = (process.env.CI ?? '') !== '' && !['0', 'false'].includes(process.env.CI as string);
const missing = `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium, or scripts/setup.sh)`;

// Without a browser on a developer's machine the test skips and says why; under CI it fails.
if (!present && !ci) process.stderr.write(`report-html/browser.test.ts skipped: ${missing}\n`);

describe.skipIf(!present && !ci)('HTML report in headless Chromium', () => {
  it('shows every chart with its marks, no errors, no requests', async () => {
    if (!present) throw new Error(`CI: ${missing}`);

    // One report over four real fixtures: a transfer suite, L2T-ww, two theory suites.
    const sections: ReportSection[] = [];
    for (const name of ['quick', 'l2t-ww', 'theory-chmm-quick', 'theory-linear'])
      for (const s of defaultReportSections(fixtureRecords(name)))
        sections.push({ ...s, title: `${name}: ${s.title}` });
    const specs: VegaLiteSpec[] = sections.flatMap((s) => s.charts);
    expect(specs.length).toBe(3 + 4 + 1 + 1);

    const dir = mkdtempSync(join(tmpdir(), 'report-html-'));
    const profile = join(dir, 'profile');
    const file = join(dir, 'report.html');
    writeFileSync(
      file,
      await renderHtmlReport(sections, { title: 'fixtures', provenance: { source: 'fixtures' } }),
    );

    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1100, height: 800 },
    });
    try {
      const page = await context.newPage();
      const consoleErrors: string[] = [];
      const pageErrors: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') consoleErrors.push(m.text());
      });
      page.on('pageerror', (e) => pageErrors.push(e.message));
      page.on('request', (r) => requests.push(r.url()));

      const url = pathToFileURL(file).href;
      await page.goto(url, { waitUntil: 'load' });

      // Per figure: its kind, the SVG's drawn size, and the children of each named mark layer.
      const figures = await page.$$eval('figure.chart', (els) =>
        els.map((fig) => {
          const svg = fig.querySelector('svg');
          const box = svg?.getBoundingClientRect();
          const marks: Record<string, number> = {};
          for (const g of fig.querySelectorAll('g.role-mark')) {
            const name = [...g.classList].find((c) => c.endsWith('_marks'));
            if (name) {
              const key = name.slice(0, -'_marks'.length);
              marks[key] = (marks[key] ?? 0) + g.children.length;
            }
          }
          return {
            kind: fig.getAttribute('data-chart'),
            width: box?.width ?? 0,
            height: box?.height ?? 0,
            marks,
            anyMarks: fig.querySelectorAll('g.role-mark > *').length,
          };
        }),
      );
      expect(figures.map((f) => f.kind)).toEqual([
        'accuracy',
        'paired',
        'curves',
        'accuracy',
        'paired',
        'curves',
        'lambda',
        'theory',
        'theory',
      ]);
      figures.forEach((f, i) => {
        expect(f.width, `chart ${i} width`).toBeGreaterThan(100);
        expect(f.height, `chart ${i} height`).toBeGreaterThan(50);
        expect(f.anyMarks, `chart ${i} marks`).toBeGreaterThan(0);
        expect(f.marks, `chart ${i} (${f.kind})`).toEqual(expectedMarks(specs[i] as VegaLiteSpec));
      });
      // The counts spelled out for the fixtures, so a wrong expectation cannot hide.
      expect(figures[0]?.marks).toEqual({ bars: 6, ci: 6 });
      expect(figures[1]?.marks).toEqual({ zero: 2, ci: 4, points: 4 });
      expect(figures[2]?.marks).toEqual({ lines: 6 });
      expect(figures[4]?.marks).toEqual({ zero: 1, ci: 1, points: 1 });
      expect(figures[6]?.marks).toEqual({ cells: 8, labels: 8 });
      expect(figures[7]?.marks).toEqual({ predicted: 4, se: 18, measured: 18 });
      expect(figures[8]?.marks).toEqual({ predicted: 3, se: 24, measured: 24 });

      // The Markdown tables are there as text.
      const pres = await page.$$eval('pre', (els) => els.map((e) => e.textContent ?? ''));
      expect(pres.some((t) => t.includes('| mnist-digits-to-parity'))).toBe(true);
      expect(pres.some((t) => t.startsWith('prediction vs Monte Carlo'))).toBe(true);

      const shot = join(dir, 'report.png');
      await page.screenshot({ path: shot });
      const png = readFileSync(shot);
      expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
      expect(statSync(shot).size).toBeGreaterThan(5_000);

      expect(consoleErrors).toEqual([]);
      expect(pageErrors).toEqual([]);
      // The file itself and nothing else.
      expect(requests).toEqual([url]);
    } finally {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
