import { describe, expect, it } from 'vitest';
import {
  merlinToy,
  merlinToyPair,
  TOY_SOURCE_SPECIFIC,
  TOY_TRANSFERABLE,
  toyDirectionEnergy,
} from './toy.js';

const at = (x: Float32Array, d: number, i: number, j: number) => x[i * d + j] as number;

describe("MeRLin authors' simulation (merlin-toy)", () => {
  it('source: x₁ = κa and x₂ = ±a both decide the label; target: x₁ = 0, x₂ = a', () => {
    const d = 12;
    const kappa = 2.5;
    const pair = merlinToyPair({ seed: 3, dim: d, sourceSpecificScale: kappa, sourceSize: 4000 });
    const src = pair.source.train;
    let off = 0;
    let flips = 0;
    for (let i = 0; i < src.y.length; i++) {
      const x1 = at(src.x, d, i, TOY_SOURCE_SPECIFIC);
      const x2 = at(src.x, d, i, TOY_TRANSFERABLE);
      expect(Math.abs(x2) * kappa).toBeCloseTo(Math.abs(x1), 6);
      expect(src.y[i]).toBe(x2 === 0 ? 1 : 0);
      if (src.y[i] === 1) off++;
      if (x2 !== 0 && Math.sign(x2) !== Math.sign(x1)) flips++;
      for (let j = 2; j < d; j++) expect([-1, 0, 1]).toContain(at(src.x, d, i, j));
    }
    // P(a = 0) = ½; the sign of x₂ is independent of a: about half flipped.
    expect(off / src.y.length).toBeGreaterThan(0.46);
    expect(off / src.y.length).toBeLessThan(0.54);
    expect(flips / (src.y.length - off)).toBeGreaterThan(0.45);
    expect(flips / (src.y.length - off)).toBeLessThan(0.55);
    for (const ds of [pair.target.train, pair.target.val, pair.target.test]) {
      for (let i = 0; i < ds.y.length; i++) {
        expect(at(ds.x, d, i, TOY_SOURCE_SPECIFIC)).toBe(0);
        expect(ds.y[i]).toBe(at(ds.x, d, i, TOY_TRANSFERABLE) === 0 ? 1 : 0);
      }
    }
    // Exactly labelsPerClass per class (default 10: the authors' 20 target examples).
    const counts = [0, 0];
    for (const y of pair.target.train.y) counts[y] = (counts[y] as number) + 1;
    expect(counts).toEqual([10, 10]);
  });

  it('κ = 0 removes the shortcut; bad options are refused naming the option', async () => {
    const pair = merlinToyPair({ seed: 1, dim: 5, sourceSpecificScale: 0, sourceSize: 100 });
    for (let i = 0; i < 100; i++) expect(at(pair.source.train.x, 5, i, 0)).toBe(0);
    expect(() => merlinToyPair({ seed: 1, sourceSpecificScale: -1 })).toThrow(
      /sourceSpecificScale must be a finite number ≥ 0, got -1/,
    );
    expect(() => merlinToyPair({ seed: 1, dim: 2 })).toThrow(/dim must be an integer ≥ 3/);
    const built = await merlinToy.build({ seed: 0, dim: 6, sourceSize: 50 } as never);
    expect(built.source.train.shape).toEqual([6]);
  });

  it('toyDirectionEnergy splits a [d, units] kernel into x₁, x₂ and the rest', () => {
    // d = 3, 2 units: row i holds coordinate i's weights.
    const e = toyDirectionEnergy(Float32Array.from([3, 0, 0, 4, 0, 0]), 3);
    expect(e.sourceSpecific).toBeCloseTo(9 / 25, 6);
    expect(e.transferable).toBeCloseTo(16 / 25, 6);
    expect(e.rest).toBeCloseTo(0, 6);
    expect(() => toyDirectionEnergy(new Float32Array(5), 3)).toThrow(/multiple of dim 3/);
  });
});
