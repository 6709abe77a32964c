import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Provenance } from './provenance.js';

/** One line of `results.jsonl`: the contract other tools read (docs/contracts.md). */
export interface TrialRecord {
  suite: string;
  /** The suite's kind (transfer, theory-linear, …): which report fits it. Absent in older records. */
  kind?: string;
  /** When the suite run that produced this record started (ISO 8601): groups one run's records. */
  run?: string;
  /**
   * The trial's identity: a hash of suite, task, method, seed and everything
   * else that determines its result. Resume skips keys with an ok record;
   * reports count a key once. Absent in records written before keys existed.
   */
  key?: string;
  task: string;
  method: string;
  /** Model-selection suites: which source model the method started from. */
  source?: string;
  seed: number;
  status: 'ok' | 'failed';
  /** Measured outcomes only: equal for equal seeds, so two identical runs compare equal. */
  metrics: Record<string, number>;
  /** Wall-clock times in ms besides the trial's own (e.g. `pretrain_ms`): vary from run to run. */
  timings?: Record<string, number>;
  durationMs: number;
  /** The tfjs backend (predictions, and training when the engine is tfjs). */
  backend: string;
  /** The engine that ran the training steps: onnxruntime or tfjs (records before engines existed: tfjs). */
  engine?: string;
  /** Present when status is "failed". */
  error?: string;
  backbone?: string;
  /** The task's build options as the suite gave them (without the seed). */
  taskOptions?: Record<string, unknown>;
  config?: Record<string, unknown>;
  curve?: { epoch: number; trainLoss: number; valAcc: number; valLoss: number }[];
  timestamp?: string;
  /** Commit, package versions, Node, CPU of the process that ran the trial. */
  provenance?: Provenance;
}

/**
 * Create `dir` and its missing parents one level at a time. Node's recursive
 * mkdir spins forever where mkdir says ENOENT for an existing parent (/proc),
 * and says only EEXIST when a path component is a file.
 */
export function ensureDir(dir: string): void {
  const missing: string[] = [];
  let p = resolve(dir);
  while (!existsSync(p)) {
    missing.unshift(p);
    const parent = dirname(p);
    if (parent === p) break;
    p = parent;
  }
  if (existsSync(p) && !statSync(p).isDirectory())
    throw new Error(`output directory ${dir}: ${p} is a file, not a directory`);
  for (const m of missing) {
    try {
      mkdirSync(m);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EEXIST' && statSync(m).isDirectory()) continue;
      throw new Error(`cannot create output directory ${dir}: ${e.message}`);
    }
  }
}

/** Whether a non-empty file ends without a newline: a crash tore its last line. */
function endsTorn(path: string): boolean {
  if (!existsSync(path)) return false;
  const size = statSync(path).size;
  if (size === 0) return false;
  const fd = openSync(path, 'r');
  try {
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, size - 1);
    return last[0] !== 0x0a;
  } finally {
    closeSync(fd);
  }
}

/**
 * Append one record as one line, synchronously, as soon as a trial ends, so
 * that a crash loses at most the trial in flight. After such a crash the file
 * ends mid-line: start a fresh line so this record is not glued onto it.
 */
export function appendRecord(path: string, record: TrialRecord): void {
  ensureDir(dirname(path));
  const repair = endsTorn(path) ? '\n' : '';
  appendFileSync(path, `${repair}${JSON.stringify(record)}\n`);
}

/** Why `value` is not a TrialRecord, or undefined when it is one. */
function recordProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return `expected an object, got ${JSON.stringify(value)}`;
  const r = value as Record<string, unknown>;
  for (const key of ['suite', 'task', 'method'])
    if (typeof r[key] !== 'string')
      return `"${key}" must be a string, got ${JSON.stringify(r[key])}`;
  if (typeof r.seed !== 'number') return `"seed" must be a number, got ${JSON.stringify(r.seed)}`;
  if (r.status !== 'ok' && r.status !== 'failed')
    return `"status" must be "ok" or "failed", got ${JSON.stringify(r.status)}`;
  for (const key of ['metrics', 'timings']) {
    const m = r[key];
    if (key === 'timings' && m === undefined) continue;
    if (typeof m !== 'object' || m === null || Array.isArray(m))
      return `"${key}" must be an object of numbers, got ${JSON.stringify(m)}`;
    for (const [k, v] of Object.entries(m))
      if (typeof v !== 'number' && v !== null)
        return `"${key}.${k}" must be a number, got ${JSON.stringify(v)}`;
  }
  return undefined;
}

/**
 * The records of a results file. A torn final line (a crash mid-write) is
 * skipped with a warning; any other bad line is an error naming file and line.
 * Records written before `timings` existed have `pretrain_ms` moved there.
 */
export function readRecords(
  path: string,
  warn: (message: string) => void = (m) => process.stderr.write(`warning: ${m}\n`),
): TrialRecord[] {
  if (!existsSync(path)) throw new Error(`no results file at ${path}`);
  const out: TrialRecord[] = [];
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      // The last line without its newline, or one the appender closed after a
      // crash (an object cut short), is a torn write: lose that trial, not the file.
      if ((i === lines.length - 1 && !text.endsWith('\n')) || cutShort(line)) {
        warn(`${path}:${i + 1}: skipping a torn line (a run stopped mid-write)`);
        return;
      }
      throw new Error(`${path}:${i + 1}: not a JSON line (${(err as Error).message})`);
    }
    const problem = recordProblem(value);
    if (problem) throw new Error(`${path}:${i + 1}: not a trial record: ${problem}`);
    out.push(withTimings(value as TrialRecord));
  });
  return out;
}

/** Whether `line` is the start of a JSON object that was cut off: brackets or a string left open. */
function cutShort(line: string): boolean {
  if (!line.startsWith('{')) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return inString || depth > 0;
}

/** Old records kept the wall-clock `pretrain_ms` among the metrics; it belongs in `timings`. */
function withTimings(r: TrialRecord): TrialRecord {
  const { pretrain_ms: ms, ...metrics } = r.metrics;
  if (ms === undefined) return r;
  return { ...r, metrics, timings: { ...r.timings, pretrain_ms: ms } };
}

/**
 * One record per trial key: an ok record wins over failed ones (a retried
 * trial), the later of two alike wins. Records without a key are kept as
 * they are. Order: where each key first appeared.
 */
export function dedupeByKey(records: readonly TrialRecord[]): TrialRecord[] {
  const chosen = new Map<string, TrialRecord>();
  for (const r of records) {
    if (r.key === undefined) continue;
    const prev = chosen.get(r.key);
    if (!prev || r.status === 'ok' || prev.status !== 'ok') chosen.set(r.key, r);
  }
  const out: TrialRecord[] = [];
  const placed = new Set<string>();
  for (const r of records) {
    if (r.key === undefined) out.push(r);
    else if (!placed.has(r.key)) {
      placed.add(r.key);
      out.push(chosen.get(r.key) as TrialRecord);
    }
  }
  return out;
}

/** The records of the most recent run in a file that accumulates runs, one per trial key. */
export function latestRun(records: readonly TrialRecord[]): TrialRecord[] {
  const last = records.at(-1)?.run;
  return dedupeByKey(last === undefined ? records : records.filter((r) => r.run === last));
}

/** Where a run's records go: appended to `outDir/results.jsonl` one by one, and kept in memory for the summary. */
export interface ResultsLog {
  readonly path: string;
  readonly records: TrialRecord[];
  add(record: TrialRecord): void;
}

export function createResultsLog(
  outDir: string,
  onAdd?: (record: TrialRecord) => void,
): ResultsLog {
  ensureDir(outDir);
  const path = join(outDir, 'results.jsonl');
  const records: TrialRecord[] = [];
  return {
    path,
    records,
    add(record) {
      appendRecord(path, record);
      records.push(record);
      // Reporting must not fail the caller: the record is already written.
      try {
        onAdd?.(record);
      } catch (err) {
        process.stderr.write(`warning: could not report a result: ${(err as Error).message}\n`);
      }
    },
  };
}
