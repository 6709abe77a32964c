import type { Rng } from '@transferlab/core';

export interface BatchSplit {
  /** Batch row indices: the first `nTrain` form the train half, the rest the val half. */
  order: Int32Array;
  nTrain: number;
  nVal: number;
}

/** Sizes of the two halves for a batch of `n` (the val half gets round(n · valFraction)). */
export function splitSizes(n: number, valFraction: number): { nTrain: number; nVal: number } {
  const nVal = Math.round(n * valFraction);
  return { nTrain: n - nVal, nVal };
}

/**
 * Split a minibatch into a train half and a val half, stratified by label:
 * each class's examples (in random order) are dealt to the two halves in
 * proportion, so a class with m examples puts ⌊m·f⌋ or ⌈m·f⌉ of them in the
 * val half. The val half has round(n · valFraction) examples, clamped so
 * neither half is empty (n ≥ 2 is required). Deterministic given `rng`.
 */
export function stratifiedSplit(
  labels: ArrayLike<number>,
  valFraction: number,
  rng: Rng,
): BatchSplit {
  const n = labels.length;
  if (n < 2) throw new Error(`stratifiedSplit: need at least 2 examples to split, got ${n}`);
  if (!(valFraction > 0 && valFraction < 1)) {
    throw new Error(`stratifiedSplit: valFraction must be in (0, 1), got ${valFraction}`);
  }
  const nVal = Math.min(n - 1, Math.max(1, splitSizes(n, valFraction).nVal));
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const y = labels[i] as number;
    let members = byClass.get(y);
    if (!members) {
      members = [];
      byClass.set(y, members);
    }
    members.push(i);
  }
  // Classes in random order (so no class always gets the rounding's extra
  // example), members in random order within each class.
  const classes = rng.shuffle([...byClass.keys()].sort((a, b) => a - b));
  const sequence: number[] = [];
  for (const c of classes) sequence.push(...rng.shuffle(byClass.get(c) as number[]));
  // Systematic sampling over the class-grouped sequence: position p goes to
  // val when ⌊(p+1)·r⌋ > ⌊p·r⌋, r = nVal/n — exactly nVal positions, spread
  // evenly, hence evenly within every class's run.
  const train: number[] = [];
  const val: number[] = [];
  sequence.forEach((idx, p) => {
    if (Math.floor(((p + 1) * nVal) / n) > Math.floor((p * nVal) / n)) val.push(idx);
    else train.push(idx);
  });
  return { order: Int32Array.from([...train, ...val]), nTrain: train.length, nVal: val.length };
}
