import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { UnknownIdError } from '@transferlab/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FASHION_MNIST_FILES, resolveFashionMnistDir } from './fashion-mnist.js';
import { loadMnist } from './mnist.js';
import { builtinTasks, createTaskPair, createTaskRegistry, type TaskSpec } from './tasks.js';
import { classCounts, computeNormalization, selectClasses } from './transforms.js';
import { type Dataset, exampleSize } from './types.js';

/** Fingerprints of every example (pixels + label), to check disjointness and equality by content. */
function fingerprints(ds: Dataset): string[] {
  const size = exampleSize(ds);
  const out: string[] = [];
  for (let i = 0; i < ds.y.length; i++) {
    const row = new Uint8Array(ds.x.buffer, ds.x.byteOffset + i * size * 4, size * 4);
    out.push(`${ds.y[i]}:${createHash('sha1').update(row).digest('base64')}`);
  }
  return out;
}

function expectDisjoint(...parts: Dataset[]): void {
  const all = parts.flatMap(fingerprints);
  expect(new Set(all).size).toBe(all.length);
}

/** Toy pool whose examples identify themselves: example i = [i, label]; 3 classes × 20. */
function pool(name = 'pool', perClass = 20, offset = 0): Dataset {
  const n = 3 * perClass;
  const x = new Float32Array(2 * n);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    x[2 * i] = offset + i;
    x[2 * i + 1] = i % 3;
  }
  return { name, x, y, shape: [2], numClasses: 3, classNames: ['a', 'b', 'c'] };
}
const ids = (ds: Dataset): number[] =>
  Array.from({ length: ds.y.length }, (_, i) => ds.x[2 * i] as number);

describe('createTaskPair', () => {
  const base = {
    id: 'toy',
    description: 'toy task',
    source: pool('src'),
    targetPool: pool(),
    labelsPerClass: 4,
    valPerClass: 3,
    seed: 1,
  };

  it('draws k labels/class for train, val/class for val and the rest for test, disjoint', () => {
    const pair = createTaskPair(base);
    expect(pair.id).toBe('toy');
    expect(pair.seed).toBe(1);
    expect(pair.labelsPerClass).toBe(4);
    expect(pair.source.train).toBe(base.source);
    expect(classCounts(pair.target.train)).toEqual([4, 4, 4]);
    expect(classCounts(pair.target.val)).toEqual([3, 3, 3]);
    expect(classCounts(pair.target.test)).toEqual([13, 13, 13]);
    const all = [...ids(pair.target.train), ...ids(pair.target.val), ...ids(pair.target.test)];
    expect(new Set(all).size).toBe(60);
    expect(pair.target.train.classNames).toEqual(['a', 'b', 'c']);
  });

  it('is deterministic for a seed, differs for another, and nests train sets across k', () => {
    const a = createTaskPair(base);
    const b = createTaskPair(base);
    const c = createTaskPair({ ...base, seed: 2 });
    expect(ids(b.target.train)).toEqual(ids(a.target.train));
    expect(ids(b.target.val)).toEqual(ids(a.target.val));
    expect(ids(b.target.test)).toEqual(ids(a.target.test));
    expect(ids(c.target.train)).not.toEqual(ids(a.target.train));
    const bigger = createTaskPair({ ...base, labelsPerClass: 8 });
    expect(ids(a.target.train).every((i) => ids(bigger.target.train).includes(i))).toBe(true);
  });

  it('limits test to testPerClass, or uses a separate test set', () => {
    expect(classCounts(createTaskPair({ ...base, testPerClass: 5 }).target.test)).toEqual([
      5, 5, 5,
    ]);
    const separate = pool('separate', 6, 1000);
    const withTest = createTaskPair({ ...base, targetTest: separate });
    expect(ids(withTest.target.test)).toEqual(ids(separate));
    expect(withTest.target.test.name).toBe('toy/target-test');
    const sub = createTaskPair({ ...base, targetTest: separate, testPerClass: 2 });
    expect(classCounts(sub.target.test)).toEqual([2, 2, 2]);
    expect(ids(sub.target.test).every((i) => i >= 1000)).toBe(true);
    // train+val use only the pool (nothing left for test is not an error with a separate test set)
    const full = createTaskPair({
      ...base,
      labelsPerClass: 10,
      valPerClass: 10,
      targetTest: separate,
    });
    expect(classCounts(full.target.val)).toEqual([10, 10, 10]);
  });

  it('explains impossible requests', () => {
    expect(() => createTaskPair({ ...base, labelsPerClass: 15, valPerClass: 6 })).toThrow(
      'class 0 ("a") has only 20 examples, but the parts need 21 (train=15, val=6)',
    );
    expect(() => createTaskPair({ ...base, labelsPerClass: 10, valPerClass: 10 })).toThrow(
      'part "test" would be empty',
    );
    expect(() => createTaskPair({ ...base, labelsPerClass: 0 })).toThrow(
      'task "toy": labelsPerClass must be a positive integer, got 0',
    );
    expect(() => createTaskPair({ ...base, targetTest: { ...pool(), numClasses: 4 } })).toThrow(
      'targetTest has 4 classes, targetPool has 3',
    );
  });
});

describe('task registry', () => {
  it('lists the built-in tasks and rejects unknown ids', () => {
    const registry = createTaskRegistry();
    expect(registry.ids).toEqual([
      'mnist04-to-mnist59',
      'fashion04-to-fashion59',
      'fashion-to-mnist',
      'mnist-digits-to-parity',
      'fashion-to-fashion-coarse',
      'mnist-digits-to-parity-shortcut',
      'mnist04-to-mnist59-shortcut',
      'fashion-to-fashion-coarse-shortcut',
      'merlin-quadratic',
      'merlin-toy',
      'spam-easy-to-hard',
    ]);
    expect(registry.get('fashion-to-mnist')).toBe(builtinTasks[2]);
    expect(() => registry.get('mnist-to-svhn')).toThrow(UnknownIdError);
    expect(() => registry.get('mnist-to-svhn')).toThrow(
      'Unknown task "mnist-to-svhn". Valid task ids: mnist04-to-mnist59, fashion04-to-fashion59, fashion-to-mnist',
    );
    const one = builtinTasks[0] as TaskSpec;
    expect(() => createTaskRegistry([one, one])).toThrow('Duplicate task id "mnist04-to-mnist59"');
    expect(createTaskRegistry([one]).ids).toEqual(['mnist04-to-mnist59']);
  });
});

describe('mnist04-to-mnist59', () => {
  const spec = createTaskRegistry().get('mnist04-to-mnist59');

  it('uses all of digits 0–4 as source and splits digits 5–9 into disjoint target sets', async () => {
    const pair = await spec.build({ seed: 0 });
    expect(pair.source.train.y.length).toBe(1001 + 1127 + 991 + 1032 + 980);
    expect(classCounts(pair.source.train)).toEqual([1001, 1127, 991, 1032, 980]);
    expect(pair.source.train.classNames).toEqual(['0', '1', '2', '3', '4']);
    expect(pair.target.train.classNames).toEqual(['5', '6', '7', '8', '9']);
    expect(pair.target.train.numClasses).toBe(5);
    expect(classCounts(pair.target.train)).toEqual([10, 10, 10, 10, 10]);
    expect(classCounts(pair.target.val)).toEqual([10, 10, 10, 10, 10]);
    // 863, 1014, 1070, 944, 978 digits minus 20 each
    expect(classCounts(pair.target.test)).toEqual([843, 994, 1050, 924, 958]);
    expectDisjoint(pair.target.train, pair.target.val, pair.target.test);
    // every target example is one of MNIST's 5–9 digits, relabelled
    const digits59 = new Set(fingerprints(selectClasses(loadMnist(), [5, 6, 7, 8, 9])));
    expect(fingerprints(pair.target.train).every((f) => digits59.has(f))).toBe(true);
    // pixels stay in [0, 1] by default
    expect(Math.max(...pair.target.train.x)).toBeLessThanOrEqual(1);
    expect(Math.min(...pair.target.train.x)).toBe(0);
  });

  it('is deterministic per seed and honours labelsPerClass', async () => {
    const a = await spec.build({ seed: 3, labelsPerClass: 5 });
    const b = await spec.build({ seed: 3, labelsPerClass: 5 });
    const c = await spec.build({ seed: 4, labelsPerClass: 5 });
    expect(classCounts(a.target.train)).toEqual([5, 5, 5, 5, 5]);
    expect(fingerprints(b.target.train)).toEqual(fingerprints(a.target.train));
    expect(fingerprints(b.target.val)).toEqual(fingerprints(a.target.val));
    expect(fingerprints(c.target.train)).not.toEqual(fingerprints(a.target.train));
    expect(a.labelsPerClass).toBe(5);
  });

  it('normalizes with source statistics on request', async () => {
    const pair = await spec.build({ seed: 0, normalization: 'source' });
    const stats = computeNormalization(pair.source.train);
    expect(stats.mean).toBeCloseTo(0, 5);
    expect(stats.std).toBeCloseTo(1, 5);
    expect(Math.min(...pair.target.train.x)).toBeLessThan(-0.3);
    await expect(spec.build({ seed: 0, normalization: 'zscore' as 'source' })).rejects.toThrow(
      'unknown normalization "zscore"',
    );
    await expect(spec.build({} as { seed: number })).rejects.toThrow(
      'build needs a finite numeric seed',
    );
  });
});

describe('Fashion-MNIST tasks on a small hand-written copy', () => {
  let dir: string;
  // Train: 10 classes × 12 images, test: 10 classes × 3 images; 2×2 pixels [i % 256, i >> 8, label, split].
  const idx = (dims: number[], data: number[]): Buffer => {
    const header = [0, 0, 8, dims.length];
    for (const d of dims) header.push((d >>> 24) & 255, (d >>> 16) & 255, (d >>> 8) & 255, d & 255);
    return gzipSync(Buffer.from([...header, ...data]));
  };
  const files = (n: number, split: number): { images: Buffer; labels: Buffer } => {
    const pixels: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < n; i++) {
      labels.push(i % 10);
      pixels.push(i % 256, i >> 8, i % 10, split);
    }
    return { images: idx([n, 2, 2], pixels), labels: idx([n], labels) };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'transferlab-fmnist-tasks-'));
    const train = files(120, 0);
    const test = files(30, 1);
    await writeFile(join(dir, FASHION_MNIST_FILES.train.images), train.images);
    await writeFile(join(dir, FASHION_MNIST_FILES.train.labels), train.labels);
    await writeFile(join(dir, FASHION_MNIST_FILES.test.images), test.images);
    await writeFile(join(dir, FASHION_MNIST_FILES.test.labels), test.labels);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fashion04-to-fashion59: source 0–4 and target 5–9 from train, test from t10k', async () => {
    const spec = createTaskRegistry().get('fashion04-to-fashion59');
    const pair = await spec.build({
      seed: 1,
      labelsPerClass: 3,
      valPerClass: 2,
      fashionMnist: { dir },
    });
    expect(classCounts(pair.source.train)).toEqual([12, 12, 12, 12, 12]);
    expect(pair.source.train.classNames).toEqual([
      'T-shirt/top',
      'Trouser',
      'Pullover',
      'Dress',
      'Coat',
    ]);
    expect(pair.target.train.classNames).toEqual([
      'Sandal',
      'Shirt',
      'Sneaker',
      'Bag',
      'Ankle boot',
    ]);
    expect(classCounts(pair.target.train)).toEqual([3, 3, 3, 3, 3]);
    expect(classCounts(pair.target.val)).toEqual([2, 2, 2, 2, 2]);
    expect(classCounts(pair.target.test)).toEqual([3, 3, 3, 3, 3]);
    // the third pixel holds the original class: 5–9 for every target example
    for (const ds of [pair.target.train, pair.target.val, pair.target.test]) {
      for (let i = 0; i < ds.y.length; i++)
        expect(Math.round((ds.x[4 * i + 2] as number) * 255)).toBe((ds.y[i] as number) + 5);
    }
    expectDisjoint(pair.target.train, pair.target.val, pair.target.test);
    // test is exactly the t10k images of classes 5–9 (i = 5..29 with i % 10 >= 5)
    const testIds = Array.from({ length: 15 }, (_, i) =>
      Math.round((pair.target.test.x[4 * i] as number) * 255),
    );
    expect(testIds).toEqual([5, 6, 7, 8, 9, 15, 16, 17, 18, 19, 25, 26, 27, 28, 29]);
    expect(Array.from({ length: 15 }, (_, i) => pair.target.test.x[4 * i + 3])).toEqual(
      new Array(15).fill(1 / 255).map(Math.fround),
    );
    for (let i = 0; i < pair.target.train.y.length; i++)
      expect(pair.target.train.x[4 * i + 3]).toBe(0);
  });

  it('fashion-to-mnist: deterministic stratified source subsample, MNIST target', async () => {
    const spec = createTaskRegistry().get('fashion-to-mnist');
    const build = (seed: number) => spec.build({ seed, sourceSize: 60, fashionMnist: { dir } });
    const a = await build(5);
    const b = await build(5);
    const c = await build(6);
    expect(classCounts(a.source.train)).toEqual(new Array(10).fill(6));
    expect(fingerprints(b.source.train)).toEqual(fingerprints(a.source.train));
    expect(fingerprints(c.source.train)).not.toEqual(fingerprints(a.source.train));
    expect(a.target.train.numClasses).toBe(10);
    expect(classCounts(a.target.train)).toEqual(new Array(10).fill(10));
    expect(classCounts(a.target.test)).toEqual([
      981, 1107, 971, 1012, 960, 843, 994, 1050, 924, 958,
    ]);
    expect(fingerprints(b.target.train)).toEqual(fingerprints(a.target.train));
    expectDisjoint(a.target.train, a.target.val, a.target.test);
    await expect(spec.build({ seed: 1, sourceSize: 500, fashionMnist: { dir } })).rejects.toThrow(
      'sourceSize must be an integer in 1..120, got 500',
    );
  });
});

describe('Fashion-MNIST tasks on the real data', () => {
  const realDir = resolveFashionMnistDir().dir;
  const present =
    existsSync(join(realDir, FASHION_MNIST_FILES.train.images)) &&
    existsSync(join(realDir, FASHION_MNIST_FILES.test.images));
  const skipNote = `${realDir} not found: install Debian's dataset-fashion-mnist to run this test`;

  it('fashion04-to-fashion59 has 6,000/class source and 1,000/class t10k test', async (ctx) => {
    ctx.skip(!present, skipNote);
    const pair = await createTaskRegistry().get('fashion04-to-fashion59').build({ seed: 0 });
    expect(classCounts(pair.source.train)).toEqual([6000, 6000, 6000, 6000, 6000]);
    expect(classCounts(pair.target.train)).toEqual([10, 10, 10, 10, 10]);
    expect(classCounts(pair.target.val)).toEqual([10, 10, 10, 10, 10]);
    expect(classCounts(pair.target.test)).toEqual([1000, 1000, 1000, 1000, 1000]);
    expectDisjoint(pair.target.train, pair.target.val);
  });

  it('fashion-to-mnist has a 10k source, 1,000 per class', async (ctx) => {
    ctx.skip(!present, skipNote);
    const spec = createTaskRegistry().get('fashion-to-mnist');
    const a = await spec.build({ seed: 0 });
    expect(a.source.train.y.length).toBe(10_000);
    expect(classCounts(a.source.train)).toEqual(new Array(10).fill(1000));
    const b = await spec.build({ seed: 0 });
    expect(fingerprints(b.source.train).slice(0, 200)).toEqual(
      fingerprints(a.source.train).slice(0, 200),
    );
  });
});

describe('mnist-digits-to-parity', () => {
  it('source: digits on one half; target: parity on the other half, labels matching the digits', async () => {
    const pair = await createTaskRegistry()
      .get('mnist-digits-to-parity')
      .build({ seed: 0, labelsPerClass: 20 });
    const mnist = loadMnist();
    // fingerprints are "label:hash"; compare pixels only
    const pixels = (ds: Dataset) => fingerprints(ds).map((f) => f.slice(f.indexOf(':') + 1));
    const digitOf = new Map<string, number>();
    pixels(mnist).forEach((f, i) => {
      digitOf.set(f, mnist.y[i] as number);
    });
    expect(pair.source.train.numClasses).toBe(10);
    expect(pair.target.train.classNames).toEqual(['even', 'odd']);
    expect(classCounts(pair.target.train)).toEqual([20, 20]);
    // half of each digit is source, stratified: 1001 zeros → 500 or 501
    expect(Math.abs((classCounts(pair.source.train)[0] as number) - 500.5)).toBeLessThanOrEqual(
      0.5,
    );
    for (const ds of [pair.target.train, pair.target.val, pair.target.test]) {
      const wrong = pixels(ds).filter((f, i) => (digitOf.get(f) as number) % 2 !== ds.y[i]);
      expect(wrong).toHaveLength(0);
    }
    const source = new Set(pixels(pair.source.train));
    expect(pixels(pair.target.test).filter((f) => source.has(f)).length).toBeLessThan(5); // MNIST has a few exact duplicates
    expect(
      pair.source.train.y.length +
        pair.target.train.y.length +
        pair.target.val.y.length +
        pair.target.test.y.length,
    ).toBe(10_000);
  });
});

describe('fashion-to-fashion-coarse on the real data', () => {
  const realDir = resolveFashionMnistDir().dir;
  const present = existsSync(join(realDir, FASHION_MNIST_FILES.test.images));

  it('maps the ten t10k classes onto five categories', async (ctx) => {
    ctx.skip(
      !present,
      `${realDir} not found: install Debian's dataset-fashion-mnist to run this test`,
    );
    const pair = await createTaskRegistry()
      .get('fashion-to-fashion-coarse')
      .build({ seed: 1, labelsPerClass: 5 });
    expect(pair.target.train.classNames).toEqual([
      'upper-body',
      'trousers',
      'dress',
      'footwear',
      'bag',
    ]);
    expect(classCounts(pair.target.train)).toEqual([5, 5, 5, 5, 5]);
    // t10k has 1,000 per fine class: 4 tops, 1 trouser, 1 dress, 3 footwear, 1 bag; minus 5 train + 10 val each
    expect(classCounts(pair.target.test)).toEqual([3985, 985, 985, 2985, 985]);
    expect(classCounts(pair.source.train)).toEqual(new Array(10).fill(1000));
  });
});
