import * as tf from '@tensorflow/tfjs-core';

/**
 * A flat, named record of tensors. Weights are passed to functions
 * explicitly (`apply(params, x)`) so that gradients over them, copying,
 * saving and meta-learning stay simple.
 */
export type Params = Readonly<Record<string, tf.Tensor>>;

export function paramNames(params: Params): string[] {
  return Object.keys(params);
}

export function countParams(params: Params, filter?: (name: string) => boolean): number {
  let n = 0;
  for (const [name, t] of Object.entries(params)) if (!filter || filter(name)) n += t.size;
  return n;
}

/** Deep copy: new tensors the caller owns. */
export function cloneParams(params: Params): Params {
  const out: Record<string, tf.Tensor> = {};
  for (const [name, t] of Object.entries(params)) out[name] = tf.keep(t.clone());
  return out;
}

export function disposeParams(params: Params | undefined | null): void {
  if (params) for (const t of Object.values(params)) t.dispose();
}

/** Keep the record's tensors out of the surrounding `tf.tidy`. */
export function keepParams<P extends Params>(params: P): P {
  for (const t of Object.values(params)) tf.keep(t);
  return params;
}

export function pickParams(params: Params, filter: (name: string) => boolean): Params {
  const out: Record<string, tf.Tensor> = {};
  for (const [name, t] of Object.entries(params)) if (filter(name)) out[name] = t;
  return out;
}

/** Names must be disjoint: merging is how a backbone and a head become one model. */
export function mergeParams(...parts: Params[]): Params {
  const out: Record<string, tf.Tensor> = {};
  for (const part of parts) {
    for (const [name, t] of Object.entries(part)) {
      if (name in out) throw new Error(`mergeParams: duplicate parameter name "${name}"`);
      out[name] = t;
    }
  }
  return out;
}

/** Read every tensor to plain arrays (for checkpoints and equality tests). */
export function paramsToArrays(
  params: Params,
): Record<string, { shape: number[]; values: Float32Array }> {
  const out: Record<string, { shape: number[]; values: Float32Array }> = {};
  for (const [name, t] of Object.entries(params)) {
    out[name] = { shape: [...t.shape], values: new Float32Array(t.dataSync()) };
  }
  return out;
}

/** Dispose the tensors of `old` that are not also in `kept` (by identity). */
export function disposeReplaced(old: Params, kept: Params): void {
  const live = new Set(Object.values(kept));
  for (const t of Object.values(old)) if (!live.has(t)) t.dispose();
}
