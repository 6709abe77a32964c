import { meanCI } from '@transferlab/evaluation';
import { describe, expect, it } from 'vitest';
import type { TrialRecord } from '../results.js';
import { csvField, formatCsv, summaryJson } from './csv.js';

const rec = (
  task: string,
  method: string,
  seed: number,
  metrics: Record<string, number> | 'failed',
): TrialRecord => ({
  suite: 's',
  task,
  method,
  seed,
  status: metrics === 'failed' ? 'failed' : 'ok',
  metrics: metrics === 'failed' ? {} : metrics,
  durationMs: 1,
  backend: 'cpu',
  ...(metrics === 'failed' ? { error: 'diverged' } : {}),
});

/** Split RFC 4180 text into records of fields (quoted fields may hold commas, quotes, CRLF). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else field += c;
      i++;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
    i++;
  }
  expect(field).toBe('');
  expect(row).toEqual([]);
  return rows;
}

const accA = [0.71, 0.74, 0.69, 0.8];
const accB = [0.83, 0.81, 0.9];
const records: TrialRecord[] = [
  ...accA.map((v, s) => rec('task, "quoted"', 'scratch', s, { target_test_acc: v, loss: 1 - v })),
  ...accB.map((v, s) => rec('task, "quoted"', 'fine-tune', s, { target_test_acc: v, loss: 1 - v })),
  rec('task, "quoted"', 'fine-tune', 3, 'failed'),
  rec('plain', 'scratch', 0, { target_test_acc: 0.55 }),
  rec('plain', 'fine-tune', 0, 'failed'),
  rec('plain', 'fine-tune', 1, 'failed'),
];

describe('formatCsv', () => {
  it('gives mean and CI equal to meanCI of each cell, n and n_failed, RFC 4180 quoted', () => {
    const text = formatCsv(records);
    expect(text.endsWith('\r\n')).toBe(true);
    expect(text.replace(/\r\n/g, '')).not.toMatch(/\n/);
    const rows = parseCsv(text);
    expect(rows[0]).toEqual(['task', 'method', 'metric', 'n', 'mean', 'ci95', 'n_failed']);
    expect(rows).toHaveLength(5);
    // The task name holds a comma and quotes: quoted, quotes doubled.
    expect(text).toContain('"task, ""quoted""",scratch,');

    const a = meanCI(accA);
    const b = meanCI(accB);
    const [, scratch, fine, plainScratch, plainFine] = rows as string[][];
    expect(scratch?.slice(0, 4)).toEqual(['task, "quoted"', 'scratch', 'target_test_acc', '4']);
    expect(Number(scratch?.[4])).toBe(a.mean);
    expect(Number(scratch?.[5])).toBe(a.ci95);
    expect(scratch?.[6]).toBe('0');
    expect(fine?.[3]).toBe('3');
    expect(Number(fine?.[4])).toBe(b.mean);
    expect(Number(fine?.[5])).toBe(b.ci95);
    expect(fine?.[6]).toBe('1');
    // By hand too: the 4-seed half-width is t(3) · sd / 2.
    expect(Number(scratch?.[4])).toBeCloseTo(0.735, 12);
    const sd = Math.sqrt(accA.reduce((s, v) => s + (v - 0.735) ** 2, 0) / 3);
    expect(Number(scratch?.[5])).toBeCloseTo((3.182 * sd) / 2, 12);
    // One seed: a mean, no CI. Every trial failed: no mean either.
    expect(plainScratch).toEqual(['plain', 'scratch', 'target_test_acc', '1', '0.55', '', '0']);
    expect(plainFine).toEqual(['plain', 'fine-tune', 'target_test_acc', '0', '', '', '2']);
  });

  it('summarises another metric when asked', () => {
    const rows = parseCsv(formatCsv(records, 'loss'));
    expect(rows[1]?.[2]).toBe('loss');
    expect(Number(rows[1]?.[4])).toBe(meanCI(accA.map((v) => 1 - v)).mean);
    // "plain" has no loss metric: n = 0, not an error.
    expect(rows[3]?.[3]).toBe('0');
  });

  it('quotes only what needs it', () => {
    expect(csvField('a')).toBe('a');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(null)).toBe('');
    expect(csvField(0.25)).toBe('0.25');
  });
});

describe('summaryJson', () => {
  it('holds the same rows as the CSV, null where the CSV is empty', () => {
    const json = summaryJson(records);
    expect(json.metric).toBe('target_test_acc');
    expect(json.rows).toHaveLength(4);
    expect(json.rows[0]).toEqual({
      task: 'task, "quoted"',
      method: 'scratch',
      metric: 'target_test_acc',
      n: 4,
      mean: meanCI(accA).mean,
      ci95: meanCI(accA).ci95,
      n_failed: 0,
    });
    expect(json.rows[3]).toMatchObject({ n: 0, mean: null, ci95: null, n_failed: 2 });
    expect(json.rows[2]).toMatchObject({ n: 1, mean: 0.55, ci95: null });
    // JSON round trip keeps nulls (NaN would become null silently).
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });
});
