import { checkSameLength, toVector } from './matrix.js';

/**
 * Kendall's rank correlation τ_b between two score lists (e.g. an estimator's
 * scores and the measured transfer accuracies of the same models), with the
 * tie correction of Kendall (1945):
 *
 *   τ_b = (n_c − n_d) / √((n₀ − n₁)(n₀ − n₂))
 *
 * n₀ = n(n−1)/2 pairs, n_c / n_d concordant / discordant pairs (a pair tied in
 * either list is neither), n₁ = Σ t_i(t_i−1)/2 over groups of ties in `a`, n₂
 * likewise in `b`. Without ties this is τ_a = (n_c − n_d)/n₀. Same value as
 * scipy.stats.kendalltau's default. O(n²), which suits the few dozen models
 * a transferability benchmark ranks.
 *
 * Errors: lengths differ, fewer than 2 entries, non-finite values, or either
 * list constant (τ_b is 0/0 then).
 */
export function kendallTau(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const fn = 'kendallTau';
  const x = toVector(fn, 'a', a);
  const y = toVector(fn, 'b', b);
  checkSameLength(fn, 'a', x.length, 'b', y.length, 'entries', 'entries');
  const n = x.length;
  if (n < 2) throw new Error(`${fn}: need at least 2 entries, got ${n}`);
  let concordant = 0;
  let discordant = 0;
  let tiesA = 0; // pairs tied in a (n₁)
  let tiesB = 0; // pairs tied in b (n₂)
  for (let i = 0; i < n; i++) {
    const xi = x[i] as number;
    const yi = y[i] as number;
    for (let j = i + 1; j < n; j++) {
      const dx = Math.sign((x[j] as number) - xi);
      const dy = Math.sign((y[j] as number) - yi);
      if (dx === 0) tiesA++;
      if (dy === 0) tiesB++;
      if (dx === 0 || dy === 0) continue;
      if (dx === dy) concordant++;
      else discordant++;
    }
  }
  const n0 = (n * (n - 1)) / 2;
  if (tiesA === n0) throw new Error(`${fn}: a is constant, so tau-b is undefined`);
  if (tiesB === n0) throw new Error(`${fn}: b is constant, so tau-b is undefined`);
  return (concordant - discordant) / Math.sqrt((n0 - tiesA) * (n0 - tiesB));
}
