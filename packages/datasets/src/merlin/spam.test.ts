import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { classCounts } from '../transforms.js';
import type { Dataset } from '../types.js';
import {
  DEFAULT_HASH_DIM,
  featurizeMessages,
  fnv1a32,
  hashFeatures,
  loadSpamAssassin,
  messageBody,
  messageText,
  SPAM_ASSASSIN_GROUP_SIZES,
  SPAM_ASSASSIN_GROUPS,
  type SpamAssassinMessage,
  spamEasyToHard,
  spamEasyToHardData,
  tokenize,
} from './spam.js';

function fingerprints(ds: Dataset): string[] {
  const size = ds.shape[0] as number;
  return Array.from({ length: ds.y.length }, (_, i) =>
    createHash('sha1')
      .update(new Uint8Array(ds.x.buffer, ds.x.byteOffset + i * size * 4, size * 4))
      .digest('base64'),
  );
}

function norm(ds: Dataset, i: number): number {
  const d = ds.shape[0] as number;
  let s = 0;
  for (let k = i * d; k < (i + 1) * d; k++) s += (ds.x[k] as number) ** 2;
  return Math.sqrt(s);
}

describe('SpamAssassin corpus', () => {
  it('has the five groups with the sizes the package documents', () => {
    const all = loadSpamAssassin();
    expect(all).toHaveLength(6046);
    const counts: Record<string, number> = {};
    for (const m of all) counts[m.group] = (counts[m.group] ?? 0) + 1;
    expect(counts).toEqual({
      'easy-ham-1': 2500,
      'easy-ham-2': 1400,
      'hard-ham-1': 250,
      'spam-1': 500,
      'spam-2': 1396,
    });
    expect(counts).toEqual(SPAM_ASSASSIN_GROUP_SIZES);
    expect(SPAM_ASSASSIN_GROUPS).toEqual([
      'easy-ham-1',
      'easy-ham-2',
      'hard-ham-1',
      'spam-1',
      'spam-2',
    ]);
    expect(new Set(all.map((m) => `${m.group}/${m.id}`)).size).toBe(6046);
    expect(loadSpamAssassin()).toBe(all); // memoised
    expect(all[0]?.text.startsWith('From ')).toBe(true);
  });
});

describe('featurisation', () => {
  it('tokenizes into lower-cased ASCII alphanumeric runs and finds the body', () => {
    expect(tokenize("Hello, WORLD! it's 2nd-rate café_42")).toEqual([
      'hello',
      'world',
      'it',
      's',
      '2nd',
      'rate',
      'caf',
      '42',
    ]);
    expect(tokenize(' ,;')).toEqual([]);
    expect(messageBody('Subject: hi\nFrom: x\n\nthe body\n\nmore')).toBe('the body\n\nmore');
    expect(messageBody('Subject: hi\r\n\r\nbody')).toBe('body');
    expect(messageBody('no blank line')).toBe('no blank line');
  });

  it('uses 32-bit FNV-1a (published test vectors)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('hashes a known text into the expected buckets, log(1+tf), unit norm', () => {
    // tokens: a, foobar, a. 0xe40c292c mod 4096 = 0x92c = 2348; 0xbf9cf968 mod 4096 = 0x968 = 2408.
    const v = hashFeatures('A foobar, a!');
    expect(v).toHaveLength(DEFAULT_HASH_DIM);
    const n = Math.sqrt(Math.log(3) ** 2 + Math.log(2) ** 2);
    expect(v[2348]).toBeCloseTo(Math.log(3) / n, 6);
    expect(v[2408]).toBeCloseTo(Math.log(2) / n, 6);
    const nonzero = Array.from(v.keys()).filter((i) => v[i] !== 0);
    expect(nonzero).toEqual([2348, 2408]);
    // With 7 buckets: 3826002220 = 7·546571745 + 5 and 3214735720 = 7·459247960 + 0.
    const small = hashFeatures('A foobar, a!', 7);
    expect(small[5]).toBeCloseTo(Math.log(3) / n, 6);
    expect(small[0]).toBeCloseTo(Math.log(2) / n, 6);
    expect([1, 2, 3, 4, 6].map((i) => small[i])).toEqual([0, 0, 0, 0, 0]);
    // Upper case folds to lower case: "FOOBAR foobar" is one token, twice → a single bucket = 1.
    const twice = hashFeatures('FOOBAR foobar', 4096);
    expect(twice[2408]).toBeCloseTo(1, 6);
    expect(Array.from(hashFeatures('', 5))).toEqual([0, 0, 0, 0, 0]);
    expect(() => hashFeatures('x', 0)).toThrow('dim must be a positive integer');
  });

  it('agrees with tokenize + fnv1a32 on real messages, and is deterministic', () => {
    const msgs = loadSpamAssassin().filter((_, i) => i % 600 === 0);
    for (const m of msgs) {
      const body = messageBody(m.text);
      const counts = new Map<number, number>();
      for (const t of tokenize(body)) {
        const b = fnv1a32(t) % 1024;
        counts.set(b, (counts.get(b) ?? 0) + 1);
      }
      const v = hashFeatures(body, 1024);
      let n2 = 0;
      for (const c of counts.values()) n2 += Math.log1p(c) ** 2;
      for (let b = 0; b < 1024; b++) {
        const want = counts.has(b) ? Math.log1p(counts.get(b) as number) / Math.sqrt(n2) : 0;
        expect(Math.abs((v[b] as number) - want)).toBeLessThan(1e-6);
      }
      expect(hashFeatures(body, 1024)).toEqual(v);
    }
    const ds = featurizeMessages('few', msgs, () => 0, ['ham'], { hashDim: 64 });
    expect(ds.shape).toEqual([64]);
    for (let i = 0; i < ds.y.length; i++) expect(norm(ds, i)).toBeCloseTo(1, 5);
  });
});

describe('spam-easy-to-hard', () => {
  it('splits the spam disjointly; source = easy ham + spam, target = hard ham + spam', () => {
    const data = spamEasyToHardData();
    const src = new Set(data.sourceMessages.map((m) => `${m.group}/${m.id}`));
    const tgt = data.targetMessages.map((m) => `${m.group}/${m.id}`);
    expect(tgt.some((k) => src.has(k))).toBe(false);
    expect(new Set(data.sourceMessages.map((m) => m.group))).toEqual(
      new Set(['easy-ham-1', 'easy-ham-2', 'spam-1', 'spam-2']),
    );
    expect(new Set(data.targetMessages.map((m) => m.group))).toEqual(
      new Set(['hard-ham-1', 'spam-1', 'spam-2']),
    );
    const hard = data.targetMessages.filter((m) => m.group === 'hard-ham-1').length;
    expect(classCounts(data.targetPool)).toEqual([hard, hard]);
    // every message is accounted for: kept in one place or dropped as a duplicate
    expect(data.sourceMessages.length + data.targetMessages.length + data.duplicates).toBe(6046);
    expect(data.duplicates).toBeLessThan(300);
    // no feature vector occurs twice anywhere
    const all = [...fingerprints(data.source), ...fingerprints(data.targetPool)];
    expect(new Set(all).size).toBe(all.length);
  });

  it('builds few-label target splits disjoint from the source, L2-normalised, deterministic per seed', async () => {
    const t0 = Date.now();
    const pair = await spamEasyToHard.build({ seed: 0 });
    const elapsed = Date.now() - t0;
    expect(pair.id).toBe('spam-easy-to-hard');
    expect(pair.source.train.shape).toEqual([4096]);
    expect(pair.source.train.classNames).toEqual(['ham', 'spam']);
    expect(classCounts(pair.target.train)).toEqual([10, 10]);
    expect(classCounts(pair.target.val)).toEqual([10, 10]);
    const [testHam, testSpam] = classCounts(pair.target.test) as [number, number];
    expect(testHam).toBe(testSpam);
    expect(testHam).toBeGreaterThan(200);
    const source = new Set(fingerprints(pair.source.train));
    const target = [pair.target.train, pair.target.val, pair.target.test].flatMap(fingerprints);
    expect(target.some((f) => source.has(f))).toBe(false);
    expect(new Set(target).size).toBe(target.length);
    for (const ds of [pair.source.train, pair.target.train, pair.target.test])
      for (let i = 0; i < ds.y.length; i += 37) expect(norm(ds, i)).toBeCloseTo(1, 5);
    const again = await spamEasyToHard.build({ seed: 0 });
    expect(fingerprints(again.target.train)).toEqual(fingerprints(pair.target.train));
    const other = await spamEasyToHard.build({ seed: 1 });
    expect(fingerprints(other.target.train)).not.toEqual(fingerprints(pair.target.train));
    // The first build featurises the corpus; later ones reuse it.
    const t1 = Date.now();
    await spamEasyToHard.build({ seed: 2 });
    expect(Date.now() - t1).toBeLessThan(1000);
    expect(elapsed).toBeLessThan(10_000); // ≈ 1–2 s on an idle machine; loose for loaded CI
  });

  it('takes hashDim and includeHeaders', async () => {
    const pair = await spamEasyToHard.build({ seed: 0, hashDim: 256, labelsPerClass: 5 });
    expect(pair.target.train.shape).toEqual([256]);
    expect(pair.target.train.y.length).toBe(10);
    const msgs = loadSpamAssassin().slice(0, 3);
    expect(messageText(msgs[0] as SpamAssassinMessage, true)).toBe(msgs[0]?.text);
    const body = featurizeMessages('b', msgs, () => 0, ['ham'], { hashDim: 256 });
    const whole = featurizeMessages('w', msgs, () => 0, ['ham'], {
      hashDim: 256,
      includeHeaders: true,
    });
    expect(whole.x).not.toEqual(body.x);
    expect(whole.x.subarray(0, 256)).toEqual(hashFeatures(msgs[0]?.text ?? '', 256));
  });
});
