/**
 * The feature-transfer losses (feature-transfer.ts) as ONNX graph nodes, for
 * the onnxruntime engine: the frozen source network's maps as constants of
 * the step graph, the matching loss of L2T-ww and feature matching, and the
 * attention-transfer loss — the same formulas as the tfjs versions, which
 * the engine tests hold them to. Maps are [N, H, W, C] (tfjs layout), as the
 * backbones' taps are returned.
 */
import type { Params } from '@transferlab/core';
import {
  attr,
  softmaxCrossEntropy as graphCrossEntropy,
  type OnnxGraphBuilder,
} from '@transferlab/graph';
import type { Backbone, LinearHead } from '@transferlab/models';
import type { TapPair } from './feature-transfer.js';

/**
 * The interpolation weights [out, in] of one axis under tfjs's
 * `resizeBilinear(…, alignCorners = false, halfPixelCenters = true)`
 * (PyTorch's `interpolate(mode='bilinear', align_corners=False)`): the
 * source coordinate (o + ½)·in/out − ½, clamped to the edges.
 */
export function bilinearWeights(inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const ratio = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = (o + 0.5) * ratio - 0.5;
    const lo = Math.max(0, Math.floor(src));
    const hi = Math.min(inSize - 1, Math.ceil(src));
    const frac = lo === hi ? 0 : src - lo;
    m[o * inSize + lo] = (m[o * inSize + lo] as number) + 1 - frac;
    m[o * inSize + hi] = (m[o * inSize + hi] as number) + frac;
  }
  return m;
}

/**
 * A bilinear resize of [N, H, W, C] to [N, h, w, C] as two MatMuls with
 * constant interpolation matrices, one per axis: exact, with the ordinary
 * MatMul gradient, and free of Resize's float scale rounding.
 */
export function emitResizeBilinear(
  g: OnnxGraphBuilder,
  map: string,
  from: readonly [number, number, number],
  to: readonly [number, number],
): string {
  const [H, W, C] = from;
  const [h, w] = to;
  if (H === h && W === w) return map;
  const n = g.dims(map)?.[0] ?? 'N';
  const reshape = (v: string, dims: number[], known: (number | string)[]) => {
    const out = g.op('Reshape', [v, g.ints(dims, 'shape')]);
    g.setDims(out, known);
    return out;
  };
  // Columns: [w, W] × [N·H, W, C] → [N·H, w, C].
  let v = map;
  if (W !== w) {
    const cols = g.initializer(g.fresh('resize_cols'), bilinearWeights(W, w), [w, W]);
    v = g.op('MatMul', [cols, reshape(v, [-1, W, C], [`${n}*${H}`, W, C])]);
  }
  // Rows: [h, H] × [N, H, w·C] → [N, h, w·C].
  if (H !== h) {
    const rows = g.initializer(g.fresh('resize_rows'), bilinearWeights(H, h), [h, H]);
    v = g.op('MatMul', [rows, reshape(v, [-1, H, w * C], [n, H, w * C])]);
  }
  return reshape(v, [-1, h, w, C], [n, h, w, C]);
}

/** [N, …] tap → [N, H, W, C]: a flat [N, C] tap becomes a 1×1 map. */
export function emitAsMap(g: OnnxGraphBuilder, tap: string): string {
  const dims = g.dims(tap);
  if (dims?.length === 4) return tap;
  return g.op('Unsqueeze', [tap, g.ints([1, 2], 'axes')]);
}

/** What a step graph needs from the frozen source network, computed from `x` with its weights as constants. */
export interface SourceGraphInputs {
  /** Per pair (by index): the source map at the target tap's H × W. */
  maps: string[];
  /** Per source tap: the map as tapped, [N, H, W, C]. */
  raw: Record<string, string>;
  /** Per source tap: its global average pool [N, C] (the meta-networks' input). */
  pooled: Record<string, string>;
}

export function emitSourceInputs(
  g: OnnxGraphBuilder,
  source: { readonly backbone: Backbone; readonly params: Params },
  pairs: readonly TapPair[],
  x: string,
): SourceGraphInputs {
  const emit = source.backbone.emitGraph;
  if (!emit)
    throw new Error(
      `the onnxruntime engine cannot compile the source backbone "${source.backbone.name}": it has no graph form; run it with --engine tfjs`,
    );
  const constant = (name: string, _shape: readonly number[], perm?: readonly number[]) => {
    const graphName = `source:${name}`;
    if (!g.has(graphName)) {
      const t = source.params[name];
      if (!t) throw new Error(`the source network has no weight "${name}"`);
      g.initializer(graphName, t.dataSync() as Float32Array, t.shape);
    }
    // onnxruntime folds a Transpose of a constant once, at session creation.
    return perm ? g.op('Transpose', [graphName], { perm: attr.ints(perm) }) : graphName;
  };
  const names = [...new Set(pairs.map((p) => p.source))];
  const out = emit.call(source.backbone, g, {
    input: x,
    weight: constant,
    training: false,
    prefix: 'source/',
    taps: names,
  });
  const raw: Record<string, string> = {};
  const pooled: Record<string, string> = {};
  for (const n of names) {
    const map = g.stopGradient(emitAsMap(g, out.taps[n] as string));
    raw[n] = map;
    pooled[n] = g.op('ReduceMean', [map], { axes: attr.ints([1, 2]), keepdims: attr.int(0) });
  }
  const maps = pairs.map((p) =>
    emitResizeBilinear(g, raw[p.source] as string, p.sourceShape, [
      p.targetShape[0],
      p.targetShape[1],
    ]),
  );
  return { maps, raw, pooled };
}

/** ReduceMean/ReduceSum over `axes`, dropping them. */
const mean = (g: OnnxGraphBuilder, v: string, axes?: number[]) =>
  g.op('ReduceMean', [v], { ...(axes ? { axes: attr.ints(axes) } : {}), keepdims: attr.int(0) });
const sum = (g: OnnxGraphBuilder, v: string, axes: number[]) =>
  g.op('ReduceSum', [v, g.ints(axes, 'axes')], { keepdims: attr.int(0) });

/**
 * The matching loss (`matchingLoss`): Σ_pairs β · mean_b [λ_b Σ_c w_bc ·
 * mean_hw (S − conn(T))²], `weights[i]` [N, C_src] (null: mean over
 * channels), `lambdas[i]` [N] (null: 1). `param` gives the connectors'
 * values (the look-ahead passes its own).
 */
export function emitMatchingLoss(
  g: OnnxGraphBuilder,
  args: {
    pairs: readonly TapPair[];
    targetTaps: Readonly<Record<string, string>>;
    sourceMaps: readonly string[];
    param: (name: string) => string;
    weights: readonly string[] | null;
    lambdas: readonly string[] | null;
    beta: number;
  },
): string {
  const terms = args.pairs.map((pair) => {
    const t = emitAsMap(g, args.targetTaps[pair.target] as string);
    const [th, tw, ct] = pair.targetShape;
    const cs = pair.sourceShape[2];
    // The 1×1 conv as one 2-D MatMul over every position: its gradients are
    // plain GEMMs too (a batched [N, H, W, C] MatMul differentiates into N·H small ones).
    const flat = g.op('Reshape', [t, g.ints([-1, ct], 'shape')]);
    g.setDims(flat, [`positions(${t})`, ct]);
    const connected = g.op('Add', [
      g.op('MatMul', [flat, args.param(`connector.${pair.index}.weight`)]),
      args.param(`connector.${pair.index}.bias`),
    ]);
    const source = g.op('Reshape', [args.sourceMaps[pair.index] as string, g.ints([-1, cs])]);
    g.setDims(source, [`positions(${t})`, cs]);
    // Per example again for the weights: [N, h·w, C_src].
    const diff = g.op('Reshape', [g.op('Sub', [source, connected]), g.ints([-1, th * tw, cs])]);
    g.setDims(diff, [g.dims(t)?.[0] ?? 'N', th * tw, cs]);
    const perChannel = mean(g, g.op('Mul', [diff, diff]), [1]);
    const w = args.weights?.[pair.index];
    const perExample = w ? sum(g, g.op('Mul', [perChannel, w]), [1]) : mean(g, perChannel, [1]);
    const lam = args.lambdas?.[pair.index];
    return mean(g, lam ? g.op('Mul', [perExample, lam]) : perExample);
  });
  const total = terms.length === 1 ? (terms[0] as string) : g.op('Sum', terms);
  return g.op('Mul', [total, g.scalar(args.beta, 'beta')]);
}

/** The normalised spatial attention map [N, H·W] of [N, H, W, C] (`attentionMap`). */
function emitAttentionMap(g: OnnxGraphBuilder, map: string): string {
  const a = g.op('Flatten', [mean(g, g.op('Mul', [map, map]), [3])], { axis: attr.int(1) });
  // max(‖a‖, 1e-12) as √max(Σa², 1e-24): the same value, and no 0/0 from √'s
  // gradient when a map is all zero (dead units) — PyTorch's norm gives 0 there too.
  const sumSq = g.op('ReduceSum', [g.op('Mul', [a, a]), g.ints([1], 'axes')]);
  return g.op('Div', [a, g.op('Sqrt', [g.op('Clip', [sumSq, g.scalar(1e-24, 'eps')])])]);
}

/** β/2 · Σ_pairs AT loss (`attentionLoss`): the source's attention resized to the target's H × W. */
export function emitAttentionLoss(
  g: OnnxGraphBuilder,
  args: {
    pairs: readonly TapPair[];
    targetTaps: Readonly<Record<string, string>>;
    sourceRaw: Readonly<Record<string, string>>;
    beta: number;
  },
): string {
  const terms = args.pairs.map((pair) => {
    const [h, w] = pair.targetShape;
    const [H, W] = pair.sourceShape;
    let s = args.sourceRaw[pair.source] as string;
    if (H !== h || W !== w) {
      const att = g.op('ReduceMean', [g.op('Mul', [s, s])], {
        axes: attr.ints([3]),
        keepdims: attr.int(1),
      });
      s = g.op('Sqrt', [emitResizeBilinear(g, att, [H, W, 1], [h, w])]);
    }
    const t = args.targetTaps[pair.target] as string;
    const diff = g.op('Sub', [emitAttentionMap(g, s), emitAttentionMap(g, t)]);
    return mean(g, g.op('Mul', [diff, diff]));
  });
  const total = terms.length === 1 ? (terms[0] as string) : g.op('Sum', terms);
  return g.op('Mul', [total, g.scalar(args.beta / 2, 'beta')]);
}

/** Mean CE of a linear head on features (flattened to [N, F]). */
export function emitHeadCrossEntropy(
  g: OnnxGraphBuilder,
  features: string,
  head: LinearHead,
  param: (name: string) => string,
  labels: string,
): string {
  const dims = g.dims(features);
  const flat = dims?.length === 2 ? features : g.op('Flatten', [features], { axis: attr.int(1) });
  const logits = g.op('Gemm', [flat, param(`${head.prefix}.weight`), param(`${head.prefix}.bias`)]);
  return graphCrossEntropy(g, logits, labels);
}
