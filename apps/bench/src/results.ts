import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Progress } from './progress.js';

/** One line of `results.jsonl`: the contract other tools read (docs/contracts.md). */
export interface TrialRecord {
  suite: string;
  /** When the suite run that produced this record started (ISO 8601): groups one run's records. */
  run?: string;
  task: string;
  method: string;
  /** Model-selection suites: which source model the method started from. */
  source?: string;
  seed: number;
  status: 'ok' | 'failed';
  metrics: Record<string, number>;
  durationMs: number;
  /** The tfjs backend (predictions, and training when the engine is tfjs). */
  backend: string;
  /** The engine that ran the training steps: onnxruntime or tfjs (records before engines existed: tfjs). */
  engine?: string;
  /** Present when status is "failed". */
  error?: string;
  backbone?: string;
  config?: Record<string, unknown>;
  curve?: { epoch: number; trainLoss: number; valAcc: number; valLoss: number }[];
  timestamp?: string;
}

/**
 * Append one record as one line, synchronously, as soon as a trial ends, so
 * that a crash loses at most the trial in flight.
 */
export function appendRecord(path: string, record: TrialRecord): void {
  mkdirSync(dirname(path), { recursive: true });
  appendFileSync(path, `${JSON.stringify(record)}\n`);
}

export function readRecords(path: string): TrialRecord[] {
  if (!existsSync(path)) throw new Error(`no results file at ${path}`);
  const out: TrialRecord[] = [];
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        out.push(JSON.parse(line) as TrialRecord);
      } catch (err) {
        throw new Error(`${path}:${i + 1}: not a JSON line (${(err as Error).message})`);
      }
    });
  return out;
}

/** The records of the most recent run in a file that accumulates runs. */
export function latestRun(records: readonly TrialRecord[]): TrialRecord[] {
  const last = records.at(-1)?.run;
  return last === undefined ? [...records] : records.filter((r) => r.run === last);
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
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, 'results.jsonl');
  const records: TrialRecord[] = [];
  return {
    path,
    records,
    add(record) {
      appendRecord(path, record);
      records.push(record);
      onAdd?.(record);
    },
  };
}

/** The record of a trial that threw: status failed, the error's message, no metrics. */
export function failedRecord(
  base: Omit<TrialRecord, 'status' | 'metrics' | 'durationMs' | 'error'>,
  err: unknown,
  started: number,
): TrialRecord {
  return {
    ...base,
    status: 'failed',
    metrics: {},
    durationMs: Date.now() - started,
    error: (err as Error).message,
  };
}

/** What every suite runner takes besides its suite (`registries` only where it looks ids up). */
export interface SuiteRunOptions<S> {
  suite: S;
  seeds?: number;
  outDir: string;
  backend?: string;
  progress?: Progress;
}

/** What every suite runner returns: the records of this run, the backend, and where they were appended. */
export interface SuiteRunResult {
  records: TrialRecord[];
  backend: string;
  resultsPath: string;
}
