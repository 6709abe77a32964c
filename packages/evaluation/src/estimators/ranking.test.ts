import { createRng } from '@transferlab/core';
import { describe, expect, it } from 'vitest';
import { hScore } from './hscore.js';
import { kendallTau } from './kendall.js';
import { leep } from './leep.js';
import { logME } from './logme.js';
import { nce } from './nce.js';

/**
 * One synthetic "source model" and three target tasks of decreasing
 * transferability: features x ~ N(0, I_6), source logits s = xW (W random,
 * 6×3); target labels y = argmax(s + σ·scale·g) with the same Gaussian noise g
 * and σ = 0, 0.3, 1.0 (scale = rms of s). LEEP sees softmax(s), NCE sees
 * argmax(s), LogME and H-score see x.
 */
function tasks(seed: number) {
  const rng = createRng(seed);
  const n = 400;
  const d = 6;
  const c = 3;
  const x = Array.from({ length: n }, () => Array.from({ length: d }, () => rng.normal()));
  const w = Array.from({ length: d }, () => Array.from({ length: c }, () => rng.normal()));
  const logits = x.map((row) =>
    Array.from({ length: c }, (_, k) =>
      row.reduce((s, v, j) => s + v * ((w[j] as number[])[k] as number), 0),
    ),
  );
  const noise = x.map(() => Array.from({ length: c }, () => rng.normal()));
  const scale = Math.sqrt(logits.flat().reduce((s, v) => s + v * v, 0) / (n * c));
  const argmax = (v: number[]) => v.indexOf(Math.max(...v));
  const probs = logits.map((l) => {
    const m = Math.max(...l);
    const e = l.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  });
  const z = logits.map(argmax);
  const levels = [0, 0.3, 1.0];
  const labels = levels.map((sigma) =>
    logits.map((l, i) =>
      argmax(l.map((v, k) => v + sigma * scale * ((noise[i] as number[])[k] as number))),
    ),
  );
  return { x, probs, z, labels, levels };
}

describe('estimators rank tasks by label noise', () => {
  it('every estimator orders noise 0 > 0.3 > 1.0, on several seeds', () => {
    for (const seed of [1, 2, 3]) {
      const { x, probs, z, labels, levels } = tasks(seed);
      const scores = {
        leep: labels.map((y) => leep(probs, y)),
        nce: labels.map((y) => nce(z, y)),
        logME: labels.map((y) => logME(x, y)),
        hScore: labels.map((y) => hScore(x, y)),
      };
      expect(scores.nce[0]).toBe(0); // noise 0: y = z
      for (const [name, s] of Object.entries(scores)) {
        expect({ name, seed, ordered: s[0]! > s[1]! && s[1]! > s[2]! }).toEqual({
          name,
          seed,
          ordered: true,
        });
        expect(
          kendallTau(
            s,
            levels.map((l) => -l),
          ),
        ).toBe(1);
      }
    }
  });
});
