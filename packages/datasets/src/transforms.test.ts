import { createRng, initBackend } from '@transferlab/core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  batches,
  classCounts,
  computeNormalization,
  concatDatasets,
  indicesByClass,
  mapLabels,
  normalize,
  selectClasses,
  stratifiedSplit,
  stratifiedSplitIndices,
  subsampleFraction,
  subsamplePerClass,
  subset,
  toTensors,
} from './transforms.js';
import type { Dataset } from './types.js';

/**
 * A toy dataset whose examples identify themselves: example i has features
 * [i, 100 * label]. Labels: class 0 ×6, class 1 ×4, class 2 ×10, class 3 ×0,
 * interleaved.
 */
function toy(): Dataset {
  const labels: number[] = [];
  const counts = [6, 4, 10];
  for (let round = 0; labels.length < 20; round++) {
    counts.forEach((n, c) => {
      if (round < n) labels.push(c);
    });
  }
  const x = new Float32Array(labels.length * 2);
  labels.forEach((c, i) => {
    x[2 * i] = i;
    x[2 * i + 1] = 100 * c;
  });
  return {
    name: 'toy',
    x,
    y: Int32Array.from(labels),
    shape: [2],
    numClasses: 4,
    classNames: ['zero', 'one', 'two', 'three'],
  };
}

/** The original example ids (first feature) of a subset of `toy()`. */
const ids = (ds: Dataset): number[] =>
  Array.from({ length: ds.y.length }, (_, i) => ds.x[2 * i] as number);

function snapshot(ds: Dataset): { x: number[]; y: number[] } {
  return { x: Array.from(ds.x), y: Array.from(ds.y) };
}

describe('classCounts / indicesByClass', () => {
  it('counts every class, including absent ones', () => {
    const ds = toy();
    expect(classCounts(ds)).toEqual([6, 4, 10, 0]);
    const byClass = indicesByClass(ds);
    expect(byClass.map((a) => a.length)).toEqual([6, 4, 10, 0]);
    expect(Array.from(byClass[1] as Int32Array).every((i) => ds.y[i] === 1)).toBe(true);
  });

  it('rejects labels out of range', () => {
    const ds = { ...toy(), y: Int32Array.from([0, 7]), x: new Float32Array(4) };
    expect(() => classCounts(ds)).toThrow('toy: label #1 is 7, outside 0..3');
  });
});

describe('subset', () => {
  it('copies the listed examples in order without touching the input', () => {
    const ds = toy();
    const before = snapshot(ds);
    const s = subset(ds, [5, 0, 5]);
    expect(ids(s)).toEqual([5, 0, 5]);
    expect(Array.from(s.y)).toEqual([ds.y[5], ds.y[0], ds.y[5]]);
    expect(s.numClasses).toBe(4);
    s.x[0] = -1;
    expect(snapshot(ds)).toEqual(before);
  });

  it('rejects bad indices and empty results', () => {
    const ds = toy();
    expect(() => subset(ds, [0, 20])).toThrow(
      'subset of toy: index 20 (position 1) is outside 0..19',
    );
    expect(() => subset(ds, [1.5])).toThrow('index 1.5');
    expect(() => subset(ds, [])).toThrow('subset of toy: no indices given');
  });
});

describe('selectClasses', () => {
  it('relabels in the given order and reorders class names', () => {
    const ds = toy();
    const before = snapshot(ds);
    const s = selectClasses(ds, [2, 0]);
    expect(s.numClasses).toBe(2);
    expect(s.classNames).toEqual(['two', 'zero']);
    expect(classCounts(s)).toEqual([10, 6]);
    for (let i = 0; i < s.y.length; i++) {
      const original = ds.y[s.x[2 * i] as number];
      expect(s.y[i]).toBe(original === 2 ? 0 : 1);
    }
    // original example order kept
    const order = ids(s);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(snapshot(ds)).toEqual(before);
  });

  it('keeps labels with relabel: false', () => {
    const s = selectClasses(toy(), [1, 2], { relabel: false });
    expect(s.numClasses).toBe(4);
    expect(classCounts(s)).toEqual([0, 4, 10, 0]);
    expect(s.classNames).toEqual(['zero', 'one', 'two', 'three']);
  });

  it('rejects absent, unknown and duplicate classes', () => {
    const ds = toy();
    expect(() => selectClasses(ds, [0, 3])).toThrow(
      'selectClasses on toy: class 3 ("three") is not present in the dataset',
    );
    expect(() => selectClasses(ds, [4])).toThrow('class 4 is outside 0..3');
    expect(() => selectClasses(ds, [1, 1])).toThrow('class 1 is listed twice');
    expect(() => selectClasses(ds, [])).toThrow('no classes given');
  });
});

describe('stratifiedSplit', () => {
  it('splits by per-class counts into disjoint parts, rest included', () => {
    const ds = toy();
    const parts = stratifiedSplit(ds, { train: 2, val: 1, test: 'rest' }, createRng(1));
    expect(classCounts(parts.train)).toEqual([2, 2, 2, 0]);
    expect(classCounts(parts.val)).toEqual([1, 1, 1, 0]);
    expect(classCounts(parts.test)).toEqual([3, 1, 7, 0]);
    const all = [...ids(parts.train), ...ids(parts.val), ...ids(parts.test)];
    expect(new Set(all).size).toBe(20);
    expect(parts.train.name).toBe('toy/train');
    // labels still match the examples
    for (const part of Object.values(parts)) {
      for (let i = 0; i < part.y.length; i++)
        expect(part.x[2 * i + 1]).toBe(100 * (part.y[i] as number));
    }
  });

  it('splits fractions proportionally per class (cumulative rounding)', () => {
    const idx = stratifiedSplitIndices(toy(), { a: 0.5, b: 0.3, c: 0.2 }, createRng(3));
    // class sizes 6, 4, 10: a = round(.5n), b = round(.8n) - round(.5n), c = n - round(.8n)
    const counts = (part: Int32Array) => classCounts(subset(toy(), part));
    expect(counts(idx.a)).toEqual([3, 2, 5, 0]);
    expect(counts(idx.b)).toEqual([2, 1, 3, 0]);
    expect(counts(idx.c)).toEqual([1, 1, 2, 0]);
    expect(new Set([...idx.a, ...idx.b, ...idx.c]).size).toBe(20);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const ds = toy();
    const a = stratifiedSplitIndices(ds, { train: 3, rest: 'rest' }, createRng(7));
    const b = stratifiedSplitIndices(ds, { train: 3, rest: 'rest' }, createRng(7));
    const c = stratifiedSplitIndices(ds, { train: 3, rest: 'rest' }, createRng(8));
    expect(Array.from(a.train)).toEqual(Array.from(b.train));
    expect(Array.from(a.train)).not.toEqual(Array.from(c.train));
  });

  it('validates sizes', () => {
    const ds = toy();
    const rng = createRng(0);
    expect(() => stratifiedSplit(ds, { a: 0.7, b: 0.5 }, rng)).toThrow(
      'fractions sum to 1.2, more than 1',
    );
    expect(() => stratifiedSplit(ds, { a: 5 }, rng)).toThrow(
      'class 1 ("one") has only 4 examples, but the parts need 5 (a=5)',
    );
    expect(() => stratifiedSplit(ds, { a: 3, b: 2 }, rng)).toThrow(
      'class 1 ("one") has only 4 examples, but the parts need 5 (a=3, b=2)',
    );
    expect(() => stratifiedSplit(ds, { a: 2.5 }, rng)).toThrow('a count must be an integer');
    expect(() => stratifiedSplit(ds, { a: 0 }, rng)).toThrow(
      'size of part "a" must be a positive count',
    );
    expect(() => stratifiedSplit(ds, { a: 'rest', b: 'rest' }, rng)).toThrow(
      "only one part may be 'rest'",
    );
    expect(() => stratifiedSplit(ds, { a: 4, b: 'rest' }, rng)).not.toThrow();
    expect(() => stratifiedSplit(selectClasses(ds, [1]), { a: 4, b: 'rest' }, rng)).toThrow(
      'part "b" would be empty',
    );
    expect(() => stratifiedSplit(ds, {}, rng)).toThrow('no parts requested');
  });
});

describe('subsamplePerClass / subsampleFraction', () => {
  it('takes exactly k per class, deterministically', () => {
    const ds = toy();
    const a = subsamplePerClass(ds, 3, createRng(5));
    expect(classCounts(a)).toEqual([3, 3, 3, 0]);
    expect(ids(subsamplePerClass(ds, 3, createRng(5)))).toEqual(ids(a));
    expect(ids(subsamplePerClass(ds, 3, createRng(6)))).not.toEqual(ids(a));
    expect(new Set(ids(a)).size).toBe(9);
  });

  it('names the class that has fewer than k examples', () => {
    expect(() => subsamplePerClass(toy(), 5, createRng(0))).toThrow(
      'subsamplePerClass on toy: class 1 ("one") has only 4 examples, fewer than k=5',
    );
    expect(() => subsamplePerClass(toy(), 0, createRng(0))).toThrow('k must be a positive integer');
  });

  it('takes a stratified fraction', () => {
    const ds = toy();
    const half = subsampleFraction(ds, 0.5, createRng(2));
    expect(classCounts(half)).toEqual([3, 2, 5, 0]);
    expect(ids(subsampleFraction(ds, 0.5, createRng(2)))).toEqual(ids(half));
    expect(classCounts(subsampleFraction(ds, 1, createRng(2)))).toEqual([6, 4, 10, 0]);
    expect(() => subsampleFraction(ds, 0, createRng(2))).toThrow(
      'fraction must be in (0, 1], got 0',
    );
    expect(() => subsampleFraction(ds, 1.5, createRng(2))).toThrow(
      'fraction must be in (0, 1], got 1.5',
    );
    expect(() => subsampleFraction(ds, 0.01, createRng(2))).toThrow('part "sample" would be empty');
  });
});

describe('normalization', () => {
  const ds: Dataset = {
    name: 'norm',
    x: Float32Array.from([1, 10, 3, 10, 5, 10, 7, 10]),
    y: Int32Array.from([0, 1, 0, 1]),
    shape: [2],
    numClasses: 2,
  };

  it('computes scalar stats and normalizes without mutating', () => {
    const stats = computeNormalization(ds);
    // values 1,3,5,7,10,10,10,10: mean 56/8 = 7, variance = (36+16+4+0+4·9)/8 = 92/8
    expect(stats.mean).toBeCloseTo(7, 10);
    expect(stats.std).toBeCloseTo(Math.sqrt(92 / 8), 10);
    const n = normalize(ds, stats);
    expect(n.x[0]).toBeCloseTo((1 - 7) / Math.sqrt(92 / 8), 6);
    expect(ds.x[0]).toBe(1);
    const m = computeNormalization(n);
    expect(m.mean).toBeCloseTo(0, 6);
    expect(m.std).toBeCloseTo(1, 6);
  });

  it('computes per-feature stats; constant features get std 1', () => {
    const stats = computeNormalization(ds, { perFeature: true });
    expect(Array.from(stats.mean)).toEqual([4, 10]);
    expect(stats.std[0]).toBeCloseTo(Math.sqrt(5), 6);
    expect(stats.std[1]).toBe(1);
    const n = normalize(ds, stats);
    expect(n.x[0]).toBeCloseTo(-3 / Math.sqrt(5), 6);
    expect(n.x[1]).toBe(0);
    expect(n.x[7]).toBe(0);
  });

  it('rejects mismatched stats', () => {
    expect(() =>
      normalize(ds, { mean: new Float32Array(3), std: new Float32Array(3).fill(1) }),
    ).toThrow('per-feature stats have 3 means and 3 stds, but examples have 2 features');
    expect(() => normalize(ds, { mean: 0, std: 0 })).toThrow('invalid stats');
  });
});

describe('concatDatasets', () => {
  it('concatenates in order', () => {
    const ds = toy();
    const a = subset(ds, [0, 1]);
    const b = subset(ds, [2]);
    const c = concatDatasets([a, b], 'ab');
    expect(c.name).toBe('ab');
    expect(ids(c)).toEqual([0, 1, 2]);
    expect(Array.from(c.y)).toEqual([ds.y[0], ds.y[1], ds.y[2]]);
    expect(c.classNames).toEqual(ds.classNames);
  });

  it('rejects incompatible datasets', () => {
    const ds = toy();
    expect(() => concatDatasets([])).toThrow('no datasets given');
    expect(() => concatDatasets([ds, { ...ds, name: 'other', shape: [1, 2] }])).toThrow(
      'other has example shape [1, 2], toy has [2]',
    );
    expect(() => concatDatasets([ds, { ...ds, name: 'other', numClasses: 5 }])).toThrow(
      'other has 5 classes, toy has 4',
    );
    expect(() =>
      concatDatasets([ds, { ...ds, name: 'other', classNames: ['a', 'b', 'c', 'd'] }]),
    ).toThrow('class names');
  });
});

describe('batches', () => {
  it('covers every example once per call, in a new order each call', () => {
    const ds = toy();
    const rng = createRng(11);
    const epoch1 = [...batches(ds, 6, rng)];
    expect(epoch1.map((b) => b.length)).toEqual([6, 6, 6, 2]);
    expect([...epoch1.flatMap((b) => Array.from(b))].sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20 }, (_, i) => i),
    );
    const epoch2 = [...batches(ds, 6, rng)];
    expect(epoch2.flatMap((b) => Array.from(b))).not.toEqual(epoch1.flatMap((b) => Array.from(b)));
    const again = [...batches(ds, 6, createRng(11))];
    expect(again.map((b) => Array.from(b))).toEqual(epoch1.map((b) => Array.from(b)));
  });

  it('drops the short last batch on request and validates', () => {
    const ds = toy();
    expect([...batches(ds, 6, createRng(1), { dropLast: true })].map((b) => b.length)).toEqual([
      6, 6, 6,
    ]);
    expect([...batches(ds, 5, createRng(1), { dropLast: true })].map((b) => b.length)).toEqual([
      5, 5, 5, 5,
    ]);
    expect(() => batches(ds, 0, createRng(1))).toThrow(
      'batchSize must be a positive integer, got 0',
    );
    expect(() => batches(ds, 21, createRng(1), { dropLast: true })).toThrow(
      'would yield no batches',
    );
  });
});

describe('toTensors', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
  });

  it('builds [n, ...shape] float32 and int32 label tensors', () => {
    const ds = toy();
    const all = toTensors(ds);
    expect(all.x.shape).toEqual([20, 2]);
    expect(all.x.dtype).toBe('float32');
    expect(all.y.dtype).toBe('int32');
    expect(Array.from(all.y.dataSync())).toEqual(Array.from(ds.y));
    const some = toTensors(ds, [3, 1]);
    expect(some.x.shape).toEqual([2, 2]);
    expect(Array.from(some.x.dataSync())).toEqual([
      3,
      100 * (ds.y[3] as number),
      1,
      100 * (ds.y[1] as number),
    ]);
    expect(Array.from(some.y.dataSync())).toEqual([ds.y[3], ds.y[1]]);
    const img: Dataset = {
      name: 'img',
      x: new Float32Array(2 * 12).map((_, i) => i),
      y: Int32Array.from([0, 1]),
      shape: [2, 3, 2],
      numClasses: 2,
    };
    const t = toTensors(img, [1]);
    expect(t.x.shape).toEqual([1, 2, 3, 2]);
    expect(t.x.dataSync()[0]).toBe(12);
    for (const tensors of [all, some, t]) {
      tensors.x.dispose();
      tensors.y.dispose();
    }
    expect(() => toTensors(ds, [20])).toThrow('toTensors on toy: index 20 is outside 0..19');
  });
});

describe('mapLabels', () => {
  const ds: Dataset = {
    name: 'd',
    x: new Float32Array(4),
    y: Int32Array.from([0, 1, 2, 3]),
    shape: [1],
    numClasses: 4,
  };
  it('relabels every example and names the new classes', () => {
    const out = mapLabels(ds, [1, 0, 1, 0], ['a', 'b']);
    expect(Array.from(out.y)).toEqual([1, 0, 1, 0]);
    expect(out.numClasses).toBe(2);
    expect(out.classNames).toEqual(['a', 'b']);
    expect(Array.from(ds.y)).toEqual([0, 1, 2, 3]);
  });
  it('rejects incomplete mappings and empty new classes', () => {
    expect(() => mapLabels(ds, [0, 1], ['a', 'b'])).toThrow(/mapping has 2 entries for 4 classes/);
    expect(() => mapLabels(ds, [0, 0, 0, 5], ['a', 'b'])).toThrow(/class 3 maps to 5/);
    expect(() => mapLabels(ds, [0, 0, 0, 0], ['a', 'b'])).toThrow(
      /no class maps to new class 1 \(b\)/,
    );
  });
});
