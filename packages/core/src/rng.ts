/**
 * Seeded pseudo-random numbers. Every random choice in transferlab (weight
 * init, shuffling, splits, synthetic data) draws from an `Rng`, never from
 * `Math.random` or tfjs' global seed, so one seed gives identical results on
 * one backend.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Standard normal (Box–Muller). */
  normal(): number;
  /** A new Float32Array of i.i.d. N(mean, std²) values. */
  normalArray(length: number, std?: number, mean?: number): Float32Array;
  /** Fisher–Yates shuffle, in place; returns the array. */
  shuffle<T>(items: T[]): T[];
  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array;
  /**
   * An independent stream derived from this one's seed and a label, so that
   * adding a random draw in one place does not shift the numbers elsewhere.
   */
  derive(label: string | number): Rng;
  readonly seed: number;
}

/** FNV-1a over the label's characters, mixed with the parent seed. */
function hashLabel(seed: number, label: string | number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  const s = String(label);
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return mix32(h);
}

/** The finaliser of MurmurHash3: spreads nearby seeds far apart. */
function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * sfc32 (Small Fast Counting generator, from PractRand): 128 bits of state,
 * passes BigCrush, and is fast in 32-bit JS integer arithmetic.
 */
export function createRng(seed: number): Rng {
  if (!Number.isFinite(seed))
    throw new Error(`createRng: seed must be a finite number, got ${seed}`);
  const seed32 = Math.trunc(seed) >>> 0;
  let a = mix32(seed32 ^ 0x9e3779b9);
  let b = mix32(seed32 + 0x6a09e667);
  let c = mix32(seed32 ^ 0xbb67ae85);
  let d = 1;
  const nextUint32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) nextUint32();
  let spareNormal: number | null = null;
  const rng: Rng = {
    seed: seed32,
    nextUint32,
    next: () => nextUint32() / 4294967296,
    int(n) {
      if (!Number.isInteger(n) || n <= 0)
        throw new Error(`Rng.int: n must be a positive integer, got ${n}`);
      return Math.floor((nextUint32() / 4294967296) * n);
    },
    normal() {
      if (spareNormal !== null) {
        const z = spareNormal;
        spareNormal = null;
        return z;
      }
      let u = 0;
      while (u === 0) u = rng.next();
      const v = rng.next();
      const r = Math.sqrt(-2 * Math.log(u));
      spareNormal = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
    normalArray(length, std = 1, mean = 0) {
      const out = new Float32Array(length);
      for (let i = 0; i < length; i++) out[i] = mean + std * rng.normal();
      return out;
    },
    shuffle(items) {
      for (let i = items.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        const tmp = items[i] as (typeof items)[number];
        items[i] = items[j] as (typeof items)[number];
        items[j] = tmp;
      }
      return items;
    },
    permutation(n) {
      const p = new Int32Array(n);
      for (let i = 0; i < n; i++) p[i] = i;
      for (let i = n - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        const tmp = p[i] as number;
        p[i] = p[j] as number;
        p[j] = tmp;
      }
      return p;
    },
    derive: (label) => createRng(hashLabel(seed32, label)),
  };
  return rng;
}
