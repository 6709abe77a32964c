/** Per-class results of a classifier: argmax, confusion matrix, accuracy per class, and their tables. */

/** Index of the largest value of each row of `logits` (n × k, row-major); the first on ties. */
export function argmaxRows(logits: Float32Array, k: number): Int32Array {
  const n = logits.length / k;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++)
      if ((logits[i * k + j] as number) > (logits[i * k + best] as number)) best = j;
    out[i] = best;
  }
  return out;
}

/** `confusion[t][p]`: examples of true class t predicted as p. */
export function confusionMatrix(
  truth: ArrayLike<number>,
  predicted: ArrayLike<number>,
  k: number,
): number[][] {
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < truth.length; i++) {
    const row = m[truth[i] as number] as number[];
    const p = predicted[i] as number;
    row[p] = (row[p] as number) + 1;
  }
  return m;
}

/** Accuracy per true class (the row's diagonal share); null for a class with no examples. */
export function perClassAccuracy(confusion: readonly (readonly number[])[]): (number | null)[] {
  return confusion.map((row, c) => {
    const n = row.reduce((a, b) => a + b, 0);
    return n === 0 ? null : (row[c] as number) / n;
  });
}

function table(header: string[], rows: string[][], right: (col: number) => boolean): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const cell = (s: string, c: number) =>
    right(c) ? s.padStart(widths[c] as number) : s.padEnd(widths[c] as number);
  const line = (r: string[]) => `| ${r.map(cell).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (right(c) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

const pct = (v: number | null) => (v === null ? '—' : `${(100 * v).toFixed(1)}%`);

export function formatPerClass(
  classes: readonly string[],
  confusion: readonly (readonly number[])[],
): string {
  const acc = perClassAccuracy(confusion);
  const rows = classes.map((name, c) => {
    const row = confusion[c] as readonly number[];
    return [name, String(row.reduce((a, b) => a + b, 0)), String(row[c]), pct(acc[c] ?? null)];
  });
  return table(['class', 'test images', 'correct', 'accuracy'], rows, (c) => c > 0);
}

export function formatConfusion(
  classes: readonly string[],
  confusion: readonly (readonly number[])[],
): string {
  const rows = classes.map((name, t) => [name, ...(confusion[t] as number[]).map(String)]);
  return table(['true \\ predicted', ...classes], rows, (c) => c > 0);
}
