import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { FASHION_MNIST_FILES, resolveFashionMnistDir } from '../fashion-mnist.js';
import { loadMnist } from '../mnist.js';
import { fashionToFashionCoarse, mnistDigitsToParity } from '../tasks.js';
import { classCounts, selectClasses, subset } from '../transforms.js';
import type { Dataset } from '../types.js';
import {
  addShortcut,
  applyShortcut,
  decodeShortcut,
  fashionToFashionCoarseShortcut,
  mnistDigitsToParityShortcut,
  SHORTCUT_KINDS,
  shortcutLayout,
  shortcutTask,
} from './shortcut.js';

/** 2000 MNIST digits, 200 per class (every 5th example of each class). */
function smallMnist(): Dataset {
  const mnist = loadMnist();
  const idx: number[] = [];
  const seen = new Array<number>(10).fill(0);
  for (let i = 0; i < mnist.y.length; i++) {
    const c = mnist.y[i] as number;
    if ((seen[c] as number) < 200 && i % 5 === 0) {
      idx.push(i);
      seen[c] = (seen[c] as number) + 1;
    }
  }
  return subset(mnist, idx, 'mnist-small');
}

/** Exact equality of two large arrays (vitest's toEqual is slow on millions of elements). */
function same(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function regionMask(kind: (typeof SHORTCUT_KINDS)[number], ds: Dataset): Uint8Array {
  const layout = shortcutLayout(kind, ds.shape, ds.numClasses);
  const mask = new Uint8Array(layout.height * layout.width);
  for (const unit of layout.units) for (const p of unit) mask[p] = 1;
  return mask;
}

describe('shortcutLayout', () => {
  it('places 10 disjoint border squares, a 4-bit code and a stripe on 28×28', () => {
    const patch = shortcutLayout('patch', [28, 28, 1], 10);
    expect(patch.units).toHaveLength(10);
    const all = patch.units.flatMap((u) => Array.from(u));
    expect(new Set(all).size).toBe(10 * 9); // 3×3 squares, disjoint
    for (const p of all) {
      const row = Math.floor(p / 28);
      expect(row < 3 || row >= 25).toBe(true); // top or bottom border band
    }
    expect(patch.values[3]).toEqual(Float32Array.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
    const code = shortcutLayout('pixel-code', [28, 28], 10);
    expect(code.units).toHaveLength(4);
    // label 5 → code 6 = 0b0110, least significant bit first
    expect(Array.from(code.values[5] as Float32Array)).toEqual([0, 1, 1, 0]);
    const stripe = shortcutLayout('stripe', [28, 28, 1], 10);
    expect(stripe.units[0]).toHaveLength(56);
    expect(stripe.values[9]?.[0]).toBe(1);
    expect(stripe.values[0]?.[0]).toBeCloseTo(0.1, 6);
  });

  it('explains layouts that do not fit and bad shapes', () => {
    expect(() => shortcutLayout('patch', [8, 8, 1], 10)).toThrow(
      'room for 8 border squares of side 2, but there are 10 classes',
    );
    expect(() => shortcutLayout('patch', [784], 10)).toThrow('must be images of shape');
    expect(() => shortcutLayout('pixel-code', [28, 28, 1], 10, { cellSize: 8 })).toThrow(
      '4 cells of side 8 do not fit',
    );
    expect(() => shortcutLayout('dots' as 'patch', [28, 28, 1], 10)).toThrow(
      'unknown shortcut kind "dots"',
    );
  });
});

describe('addShortcut', () => {
  const ds = smallMnist();

  it('strength 0 leaves the data unchanged', () => {
    for (const kind of SHORTCUT_KINDS) {
      const { dataset, carriers } = applyShortcut(ds, { kind, strength: 0, rng: createRng(1) });
      expect(same(dataset.x, ds.x)).toBe(true);
      expect(carriers.reduce((a, b) => a + b, 0)).toBe(0);
    }
  });

  it.each(SHORTCUT_KINDS)(
    "'%s' at strength 1 marks every example and a trivial decoder recovers every label",
    (kind) => {
      const { dataset, carriers } = applyShortcut(ds, { kind, strength: 1, rng: createRng(2) });
      expect(carriers.every((c) => c === 1)).toBe(true);
      expect(Array.from(decodeShortcut(dataset, kind))).toEqual(Array.from(ds.y));
      // On the unmarked digits the decoder mostly finds nothing, and is never better than chance.
      const plain = decodeShortcut(ds, kind);
      const hits = plain.filter((p, i) => p === ds.y[i]).length;
      expect(hits / ds.y.length).toBeLessThan(0.15);
    },
  );

  it.each(SHORTCUT_KINDS)(
    "'%s' at strength 0.4 marks ~40% of the examples with intensity 0.4, nothing else changes",
    (kind) => {
      const s = 0.4;
      const { dataset, carriers, layout } = applyShortcut(ds, {
        kind,
        strength: s,
        rng: createRng(3),
      });
      const n = ds.y.length;
      const count = carriers.reduce((a, b) => a + b, 0);
      // Binomial(2000, 0.4): sd ≈ 21.9; allow 4 sd.
      expect(Math.abs(count - s * n)).toBeLessThan(4 * Math.sqrt(n * s * (1 - s)));
      const mask = regionMask(kind, ds);
      const pixelValue = new Map<number, number>(); // pixel → unit
      layout.units.forEach((u, unit) => {
        for (const p of u) pixelValue.set(p, unit);
      });
      let maxErr = 0;
      let changedOutside = 0;
      for (let i = 0; i < n; i++) {
        const label = ds.y[i] as number;
        for (let p = 0; p < 784; p++) {
          const before = ds.x[i * 784 + p] as number;
          const after = dataset.x[i * 784 + p] as number;
          if (carriers[i] && mask[p]) {
            const m = layout.values[label]?.[pixelValue.get(p) as number] as number;
            maxErr = Math.max(maxErr, Math.abs(after - ((1 - s) * before + s * m)));
          } else if (after !== before) {
            changedOutside++;
          }
        }
      }
      expect(maxErr).toBeLessThan(1e-6);
      expect(changedOutside).toBe(0);
      // Marked examples decode to their labels (MNIST borders are dark).
      const decoded = decodeShortcut(dataset, kind, { intensity: s });
      let ok = 0;
      for (let i = 0; i < n; i++) if (carriers[i] && decoded[i] === ds.y[i]) ok++;
      expect(ok / count).toBeGreaterThan(0.97);
    },
  );

  it('keeps shape, labels and the [0, 1] range, and does not touch its input', () => {
    const copy = ds.x.slice();
    const out = addShortcut(ds, { kind: 'patch', strength: 0.7, rng: createRng(4) });
    expect(out.shape).toEqual([28, 28, 1]);
    expect(out.x.length).toBe(ds.x.length);
    expect(out.y).toEqual(ds.y);
    expect(out.numClasses).toBe(10);
    expect(out.x.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(same(ds.x, copy)).toBe(true);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const a = applyShortcut(ds, { kind: 'stripe', strength: 0.5, rng: createRng(7) });
    const b = applyShortcut(ds, { kind: 'stripe', strength: 0.5, rng: createRng(7) });
    const c = applyShortcut(ds, { kind: 'stripe', strength: 0.5, rng: createRng(8) });
    expect(same(b.dataset.x, a.dataset.x)).toBe(true);
    expect(b.carriers).toEqual(a.carriers);
    expect(c.carriers).not.toEqual(a.carriers);
  });

  it('separate intensity and probability overrides, multi-channel images', () => {
    const rgb: Dataset = {
      name: 'rgb',
      x: new Float32Array(4 * 10 * 10 * 3).fill(0.5),
      y: Int32Array.from([0, 1, 2, 1]),
      shape: [10, 10, 3],
      numClasses: 3,
    };
    const { dataset, carriers } = applyShortcut(rgb, {
      kind: 'patch',
      strength: 0.1,
      intensity: 1,
      probability: 1,
      patchSize: 2,
      rng: createRng(0),
    });
    expect(Array.from(carriers)).toEqual([1, 1, 1, 1]);
    expect(Array.from(decodeShortcut(dataset, 'patch', { patchSize: 2 }))).toEqual([0, 1, 2, 1]);
    // pixel (0,0) is in class 0's square: all three channels set to 1 for example 0, 0 for example 1
    expect(Array.from(dataset.x.subarray(0, 3))).toEqual([1, 1, 1]);
    expect(Array.from(dataset.x.subarray(300, 303))).toEqual([0, 0, 0]);
  });

  it('rejects strengths outside [0, 1] and labels outside the classes', () => {
    expect(() => addShortcut(ds, { kind: 'patch', strength: 1.5, rng: createRng(0) })).toThrow(
      'strength must be a number in [0, 1], got 1.5',
    );
    expect(() =>
      addShortcut(
        { ...ds, y: Int32Array.from(ds.y, () => 12) },
        {
          kind: 'patch',
          strength: 1,
          rng: createRng(0),
        },
      ),
    ).toThrow('label #0 is 12, outside 0..9');
  });
});

describe('shortcut task pairs', () => {
  it('marks only the source of mnist-digits-to-parity; the target splits are the base task’s', async () => {
    const base = await mnistDigitsToParity.build({ seed: 3 });
    const pair = await mnistDigitsToParityShortcut.build({ seed: 3 });
    expect(pair.id).toBe('mnist-digits-to-parity-shortcut');
    expect(same(pair.target.train.x, base.target.train.x)).toBe(true);
    expect(same(pair.target.val.x, base.target.val.x)).toBe(true);
    expect(same(pair.target.test.x, base.target.test.x)).toBe(true);
    expect(same(pair.target.test.y, base.target.test.y)).toBe(true);
    // No marks in the target, every source example marked at the default strength 1.
    const decodedTarget = decodeShortcut({ ...pair.target.test, numClasses: 10 }, 'patch');
    expect(decodedTarget.filter((d) => d !== -1).length / decodedTarget.length).toBeLessThan(0.02);
    expect(Array.from(decodeShortcut(pair.source.train, 'patch'))).toEqual(
      Array.from(pair.source.train.y),
    );
    expect(classCounts(pair.source.train)).toEqual(classCounts(base.source.train));
  });

  it('takes shortcutStrength / shortcutKind from the build options; strength 0 is the base pair', async () => {
    const base = await mnistDigitsToParity.build({ seed: 1 });
    const none = await mnistDigitsToParityShortcut.build({ seed: 1, shortcutStrength: 0 });
    expect(same(none.source.train.x, base.source.train.x)).toBe(true);
    const half = await mnistDigitsToParityShortcut.build({
      seed: 1,
      shortcutStrength: 0.5,
      shortcutKind: 'pixel-code',
    });
    const again = await mnistDigitsToParityShortcut.build({
      seed: 1,
      shortcutStrength: 0.5,
      shortcutKind: 'pixel-code',
    });
    expect(same(again.source.train.x, half.source.train.x)).toBe(true);
    const decoded = decodeShortcut(half.source.train, 'pixel-code', { intensity: 0.5 });
    const marked = decoded.filter((d) => d !== -1).length / decoded.length;
    expect(marked).toBeGreaterThan(0.45);
    expect(marked).toBeLessThan(0.55);
    expect(half.description).toContain("kind 'pixel-code', strength 0.5");
  });

  it('builds custom specs and normalizes after marking', async () => {
    const spec = shortcutTask({ base: mnistDigitsToParity, kind: 'stripe', strength: 0.3 });
    expect(spec.id).toBe('mnist-digits-to-parity-shortcut');
    expect(spec.shortcut).toEqual({ kind: 'stripe', strength: 0.3 });
    const pair = await spec.build({ seed: 0, normalization: 'source', labelsPerClass: 5 });
    expect(pair.target.train.y.length).toBe(10);
    let sum = 0;
    for (const v of pair.source.train.x) sum += v;
    expect(Math.abs(sum / pair.source.train.x.length)).toBeLessThan(1e-4);
    expect(() => shortcutTask({ base: () => mnistDigitsToParity })).toThrow('give an id');
    expect(() => shortcutTask({ base: mnistDigitsToParity, strength: -1 })).toThrow(
      'strength must be a number in [0, 1]',
    );
  });

  it('works for 5-class sources too (mnist04)', () => {
    const five = selectClasses(smallMnist(), [0, 1, 2, 3, 4]);
    const out = addShortcut(five, { kind: 'pixel-code', strength: 1, rng: createRng(0) });
    expect(Array.from(decodeShortcut(out, 'pixel-code'))).toEqual(Array.from(five.y));
  });
});

describe('fashion-to-fashion-coarse-shortcut', () => {
  const present = existsSync(join(resolveFashionMnistDir().dir, FASHION_MNIST_FILES.train.images));
  it('marks the Fashion-MNIST source (decodable at strength 1 on any background), not the target', async (ctx) => {
    ctx.skip(!present, "Fashion-MNIST files not found: install Debian's dataset-fashion-mnist");
    const pair = await fashionToFashionCoarseShortcut.build({ seed: 0, sourceSize: 2000 });
    expect(pair.id).toBe('fashion-to-fashion-coarse-shortcut');
    expect(Array.from(decodeShortcut(pair.source.train, 'patch'))).toEqual(
      Array.from(pair.source.train.y),
    );
    // Garments may reach the border (so the decoder finds bright squares), but no
    // target image holds a class pattern exactly, while every source image does.
    const layout = shortcutLayout('patch', [28, 28, 1], 10);
    const exact = (ds: Dataset): number => {
      let count = 0;
      for (let i = 0; i < ds.y.length; i++) {
        const matches = layout.values.some((v) =>
          layout.units.every((u, unit) =>
            Array.from(u).every((p) => ds.x[i * 784 + p] === v[unit]),
          ),
        );
        if (matches) count++;
      }
      return count;
    };
    expect(exact(pair.source.train)).toBe(pair.source.train.y.length);
    expect(exact(pair.target.test)).toBeLessThan(pair.target.test.y.length * 0.01);
    const base = await fashionToFashionCoarse.build({ seed: 0, sourceSize: 2000 });
    expect(same(pair.target.test.x, base.target.test.x)).toBe(true);
  });
});
