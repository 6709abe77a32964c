import { readFile } from 'node:fs/promises';

// Helpers for the whitespace-separated index files of Pets and CUB-200.

/** Lines split on whitespace, with their 1-based line numbers; blank and '#' lines dropped. */
export async function readTable(
  path: string,
  columns: number,
  title: string,
): Promise<{ line: number; fields: string[] }[]> {
  const text = await readFile(path, 'utf8');
  const out: { line: number; fields: string[] }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const s = raw.trim();
    if (s === '' || s.startsWith('#')) return;
    const fields = s.split(/\s+/);
    if (fields.length < columns)
      throw new Error(
        `${title}: line ${i + 1} of ${path} has ${fields.length} field(s), expected ${columns}: ${JSON.stringify(s)}`,
      );
    out.push({ line: i + 1, fields });
  });
  if (out.length === 0) throw new Error(`${title}: ${path} lists nothing`);
  return out;
}

/** A positive integer field, or an error naming the file and line. */
export function intField(
  value: string,
  path: string,
  line: number,
  what: string,
  title: string,
): number {
  const v = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(v))
    throw new Error(
      `${title}: line ${line} of ${path}: ${what} must be an integer, got "${value}"`,
    );
  return v;
}
