import * as tf from '@tensorflow/tfjs-core';
import {
  cloneParams,
  disposeParams,
  mergeParams,
  type Params,
  type Rng,
  softmaxCrossEntropy,
} from '@transferlab/core';
import {
  type Backbone,
  type BackboneSpec,
  cnnSpec,
  createBackbone,
  createBackboneRegistry,
  type LinearHead,
  linearHead,
  mlpSpec,
  requireSpec,
  type SpecBackbone,
} from '@transferlab/models';
import type { MethodContext, StepResult } from '../types.js';
import { requirePositive } from './config.js';
import type { FeatureTransferEngine } from './feature-transfer-engine.js';
import { matMulFast } from './mat-mul.js';
import type { OptimConfig } from './optim.js';
import {
  disposeTrainedModel,
  initTrainedModel,
  type TrainedModel,
  trainedModelStep,
} from './trained-model.js';

/**
 * What L2T-ww and its feature-transfer baselines (feature matching,
 * attention transfer) share: a frozen source network (the runner's
 * backbone architecture with the source-pretrained weights), a target
 * network trained from scratch that may have another architecture, and
 * (source tap, target tap) pairs whose feature maps are compared.
 */
export interface FeatureTransferOptions {
  /**
   * The target network: 'same' (the runner's backbone architecture, fresh
   * weights), 'cnn' (cnnSpec with `targetChannels`, `targetDenseUnits`),
   * 'mlp' (mlpSpec with `targetHidden`), 'spec' (`targetSpec`), or the id
   * of a backbone in the models' registry.
   */
  targetBackbone: string;
  targetChannels: number[];
  targetDenseUnits: number;
  targetHidden: number[];
  /** A BackboneSpec, used when targetBackbone is 'spec'. */
  targetSpec: BackboneSpec | null;
  /** Source layers whose outputs are transferred ([]: every conv layer's output, or every dense layer's for MLPs). */
  sourceTaps: string[];
  /** Target layers that receive them ([]: same rule). */
  targetTaps: string[];
  /**
   * 'all' (every source tap × every target tap), 'one-to-one' (i-th with
   * i-th), 'single' (last source tap with last target tap) or an explicit
   * list "src:tgt,src:tgt".
   */
  pairs: string;
}

/**
 * The target network's optimizer in the L2T-ww reference code (train_l2t_ww.py
 * defaults; 30 epochs instead of 200 for the bench). The feature-transfer
 * baselines share it, so they compare at equal settings.
 */
export const l2twwTargetOptim = {
  epochs: 30,
  batchSize: 64,
  optimizer: 'sgd',
  lr: 0.1,
  momentum: 0.9,
  weightDecay: 1e-4,
  schedule: 'cosine',
} as const;

export const featureTransferDefaults: FeatureTransferOptions = {
  targetBackbone: 'same',
  targetChannels: [16, 32],
  targetDenseUnits: 128,
  targetHidden: [256, 128],
  targetSpec: null,
  sourceTaps: [],
  targetTaps: [],
  pairs: 'all',
};

function requireIntArray(id: string, name: string, value: unknown): void {
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    !value.every((v) => Number.isInteger(v) && (v as number) > 0)
  ) {
    throw new Error(
      `method "${id}": ${name} must be a non-empty array of positive integers, got ${JSON.stringify(value)}`,
    );
  }
}

function requireStringArray(id: string, name: string, value: unknown): void {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new Error(
      `method "${id}": ${name} must be an array of layer names, got ${JSON.stringify(value)}`,
    );
  }
}

export function validateFeatureTransferOptions(id: string, c: FeatureTransferOptions): void {
  requireIntArray(id, 'targetChannels', c.targetChannels);
  requireIntArray(id, 'targetHidden', c.targetHidden);
  requirePositive(id, 'targetDenseUnits', c.targetDenseUnits, true);
  requireStringArray(id, 'sourceTaps', c.sourceTaps);
  requireStringArray(id, 'targetTaps', c.targetTaps);
  if (c.targetBackbone === 'spec') {
    const s = c.targetSpec as Partial<BackboneSpec> | null;
    if (!s || !Array.isArray(s.layers) || !Array.isArray(s.inputShape)) {
      throw new Error(
        `method "${id}": targetBackbone 'spec' needs targetSpec, a BackboneSpec {name, inputShape, layers}`,
      );
    }
  } else if (c.targetSpec !== null) {
    throw new Error(
      `method "${id}": targetSpec is only used with targetBackbone 'spec' (got targetBackbone '${c.targetBackbone}')`,
    );
  }
  if (!c.pairs) throw new Error(`method "${id}": pairs must not be empty`);
  // Syntax only here (tap names need the built backbones): a bad spec must fail before pre-training.
  if (typeof c.pairs !== 'string')
    throw new Error(`method "${id}": pairs must be a string, got ${JSON.stringify(c.pairs)}`);
  if (!NAMED_PAIRS.has(c.pairs)) parsePairList(id, c.pairs);
}

const NAMED_PAIRS = new Set(['all', 'one-to-one', 'single']);

/** A "sourceTap:targetTap,…" list as pairs of names; throws on anything else. */
function parsePairList(id: string, spec: string): [string, string][] {
  return spec.split(',').map((p): [string, string] => {
    const parts = p.trim().split(':');
    if (parts.length !== 2 || !parts[0] || !parts[1]) {
      throw new Error(
        `method "${id}": pairs must be 'all', 'one-to-one', 'single' or a list "sourceTap:targetTap,…", got "${spec}"`,
      );
    }
    return [parts[0], parts[1]];
  });
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The target network's architecture, from the options and the source backbone (for 'same' and the input shape). */
export function resolveTargetBackbone(
  id: string,
  c: FeatureTransferOptions,
  source: Backbone,
): SpecBackbone {
  const input = source.inputShape;
  let target: SpecBackbone;
  switch (c.targetBackbone) {
    case 'same':
      // The target network is trained through second-order-safe layer ops, which need its layers.
      requireSpec(
        source,
        `method "${id}": targetBackbone 'same' (the target network runs the source's layers)`,
      );
      target = source as SpecBackbone;
      break;
    case 'cnn':
      target = createBackbone(cnnSpec(input, c.targetChannels, c.targetDenseUnits));
      break;
    case 'mlp':
      target = createBackbone(mlpSpec(input, c.targetHidden));
      break;
    case 'spec':
      target = createBackbone(c.targetSpec as BackboneSpec);
      break;
    default: {
      const registry = createBackboneRegistry();
      if (!registry.has(c.targetBackbone)) {
        throw new Error(
          `method "${id}": unknown targetBackbone "${c.targetBackbone}". Valid: same, cnn, mlp, spec, ${registry.ids.join(', ')}`,
        );
      }
      target = registry.get(c.targetBackbone).create(input);
    }
  }
  if (size(target.inputShape) !== size(input)) {
    throw new Error(
      `method "${id}": the target backbone takes inputs of shape [${target.inputShape}], the source [${input}]: they must hold the same number of values`,
    );
  }
  return target;
}

/** Default taps: every conv layer's and residual block's output (after its batch normalisation and ReLU), else every dense layer's. */
export function defaultTaps(backbone: Backbone): string[] {
  const layers = backbone.spec?.layers ?? [];
  const after = (i: number) => {
    let j = i;
    while (layers[j + 1]?.kind === 'relu' || layers[j + 1]?.kind === 'batchNorm') j++;
    return layers[j]?.name as string;
  };
  const convs = layers.flatMap((l, i) =>
    l.kind === 'conv2d' || l.kind === 'residual' ? [after(i)] : [],
  );
  if (convs.length > 0) return convs;
  return layers.flatMap((l, i) => (l.kind === 'dense' ? [after(i)] : []));
}

export function resolveTaps(
  id: string,
  role: 'source' | 'target',
  backbone: Backbone,
  names: readonly string[],
): string[] {
  const taps = names.length > 0 ? [...names] : defaultTaps(backbone);
  if (taps.length === 0) {
    throw new Error(
      `method "${id}": the ${role} backbone "${backbone.name}" has no conv or dense layer to tap${backbone.spec ? '' : ' that can be found without a layer description'}; name ${role}Taps explicitly. Available taps: ${Object.keys(backbone.tapShapes).join(', ')}`,
    );
  }
  for (const t of taps) {
    if (!(t in backbone.tapShapes)) {
      throw new Error(
        `method "${id}": the ${role} backbone "${backbone.name}" has no tap "${t}". Available taps: ${Object.keys(backbone.tapShapes).join(', ')}`,
      );
    }
  }
  return taps;
}

/** One (source tap, target tap) pair. Feature maps are [H, W, C]; a flat [C] tap is a 1×1 map. */
export interface TapPair {
  readonly index: number;
  readonly source: string;
  readonly target: string;
  /** [H, W, C] of one source example. */
  readonly sourceShape: readonly [number, number, number];
  readonly targetShape: readonly [number, number, number];
}

function asMapShape(shape: readonly number[]): [number, number, number] | undefined {
  if (shape.length === 3) return [...shape] as [number, number, number];
  if (shape.length === 1) return [1, 1, shape[0] as number];
  return undefined;
}

export function resolvePairs(
  id: string,
  spec: string,
  source: Backbone,
  sourceTaps: readonly string[],
  target: Backbone,
  targetTaps: readonly string[],
): TapPair[] {
  let raw: [string, string][];
  if (spec === 'all') {
    raw = sourceTaps.flatMap((s) => targetTaps.map((t): [string, string] => [s, t]));
  } else if (spec === 'one-to-one') {
    if (sourceTaps.length !== targetTaps.length) {
      throw new Error(
        `method "${id}": pairs 'one-to-one' needs as many source taps as target taps, got ${sourceTaps.length} (${sourceTaps.join(', ')}) and ${targetTaps.length} (${targetTaps.join(', ')})`,
      );
    }
    raw = sourceTaps.map((s, i): [string, string] => [s, targetTaps[i] as string]);
  } else if (spec === 'single') {
    raw = [
      [sourceTaps[sourceTaps.length - 1] as string, targetTaps[targetTaps.length - 1] as string],
    ];
  } else {
    raw = parsePairList(id, spec);
    for (const [s, t] of raw) {
      resolveTaps(id, 'source', source, [s]);
      resolveTaps(id, 'target', target, [t]);
    }
  }
  return raw.map(([s, t], index) => {
    const ss = source.tapShapes[s] as readonly number[];
    const ts = target.tapShapes[t] as readonly number[];
    const sourceShape = asMapShape(ss);
    const targetShape = asMapShape(ts);
    if (!sourceShape || !targetShape || ss.length !== ts.length) {
      throw new Error(
        `method "${id}": cannot match source tap "${s}" of shape [${ss}] with target tap "${t}" of shape [${ts}]: both must be feature maps [H, W, C] or both vectors [C]`,
      );
    }
    return { index, source: s, target: t, sourceShape, targetShape };
  });
}

/** [N, ...shape] → [N, H, W, C] (a flat [N, C] becomes [N, 1, 1, C]). */
export function asMap(t: tf.Tensor): tf.Tensor4D {
  return (t.rank === 4 ? t : tf.reshape(t, [t.shape[0] as number, 1, 1, -1])) as tf.Tensor4D;
}

/** The source map resized (bilinear, half-pixel centres: PyTorch's interpolate) to the target tap's H × W. */
export function resizeToTarget(map: tf.Tensor4D, pair: TapPair): tf.Tensor4D {
  const [h, w] = pair.targetShape;
  if (map.shape[1] === h && map.shape[2] === w) return map;
  return tf.image.resizeBilinear(map, [h, w], false, true);
}

/** The frozen source network's taps for a batch (no gradient is taken through them). */
export function sourceTaps(
  source: { backbone: Backbone; params: Params },
  pairs: readonly TapPair[],
  x: tf.Tensor,
): Record<string, tf.Tensor4D> {
  const names = [...new Set(pairs.map((p) => p.source))];
  const { taps } = source.backbone.apply(source.params, x, { taps: names });
  return Object.fromEntries(names.map((n) => [n, asMap(taps[n] as tf.Tensor)]));
}

const connectorWeight = (i: number) => `connector.${i}.weight`;
const connectorBias = (i: number) => `connector.${i}.bias`;

/**
 * The 1×1 convs (C_tgt → C_src) that map a target map into the source's
 * channel space, stored as dense [C_tgt, C_src] matrices. PyTorch's default
 * Conv2d init (uniform ±1/√fan_in for weight and bias), as in the reference code.
 */
export function initConnectors(pairs: readonly TapPair[], rng: Rng): Params {
  const out: Record<string, tf.Tensor> = {};
  for (const p of pairs) {
    const cin = p.targetShape[2];
    const cout = p.sourceShape[2];
    const bound = 1 / Math.sqrt(cin);
    const u = (r: Rng, n: number) =>
      Float32Array.from({ length: n }, () => (2 * r.next() - 1) * bound);
    out[connectorWeight(p.index)] = tf.tensor2d(
      u(rng.derive(connectorWeight(p.index)), cin * cout),
      [cin, cout],
    );
    out[connectorBias(p.index)] = tf.tensor1d(u(rng.derive(connectorBias(p.index)), cout));
  }
  return out;
}

/** connector(target map): [N, H, W, C_tgt] → [N, H, W, C_src] (a 1×1 conv as one matmul: second-order safe). */
export function applyConnector(params: Params, pair: TapPair, targetMap: tf.Tensor4D): tf.Tensor4D {
  const w = params[connectorWeight(pair.index)];
  const b = params[connectorBias(pair.index)];
  if (!w || !b) throw new Error(`missing connector parameters for pair ${pair.index}`);
  const [n, h, wd, c] = targetMap.shape;
  const flat = tf.reshape(targetMap, [n * h * wd, c]) as tf.Tensor2D;
  return tf.reshape(tf.add(matMulFast(flat, w as tf.Tensor2D), b), [n, h, wd, pair.sourceShape[2]]);
}

/**
 * The L2T-ww matching loss, Σ_pairs β · mean_b [ λ_b Σ_c w_bc · mean_hw (S − conn(T))² ].
 * `weights[i]` [N, C_src] are the channel weights of pair i (null: uniform
 * 1/C_src, i.e. the mean over channels), `lambdas[i]` [N] its per-example
 * weights (null: 1). `sourceMaps[i]` is pair i's source map at the target's size.
 */
export function matchingLoss(args: {
  pairs: readonly TapPair[];
  params: Params;
  targetTaps: Record<string, tf.Tensor>;
  sourceMaps: readonly tf.Tensor4D[];
  weights: readonly tf.Tensor2D[] | null;
  lambdas: readonly tf.Tensor1D[] | null;
  beta: number;
}): tf.Scalar {
  let total: tf.Tensor = tf.scalar(0);
  for (const pair of args.pairs) {
    const t = asMap(args.targetTaps[pair.target] as tf.Tensor);
    const s = args.sourceMaps[pair.index] as tf.Tensor4D;
    const diff = tf.sub(s, applyConnector(args.params, pair, t));
    const perChannel = tf.mean(tf.square(diff), [1, 2]); // [N, C_src]
    const w = args.weights?.[pair.index];
    const perExample = w ? tf.sum(tf.mul(perChannel, w), 1) : tf.mean(perChannel, 1); // [N]
    const lam = args.lambdas?.[pair.index];
    total = tf.add(total, tf.mean(lam ? tf.mul(perExample, lam) : perExample));
  }
  return tf.mul(total, args.beta) as tf.Scalar;
}

/**
 * A target network (backbone + linear head `head.*` + optional connectors)
 * trained against a frozen source. `backbone` is the target network, which
 * may differ from the runner's backbone (the source's architecture).
 */
export interface FeatureTransferState<C extends OptimConfig & FeatureTransferOptions>
  extends TrainedModel<C> {
  readonly backbone: SpecBackbone;
  readonly source: { readonly backbone: Backbone; readonly params: Params };
  readonly head: LinearHead;
  readonly pairs: readonly TapPair[];
  /**
   * Set when the steps run on the onnxruntime engine: it owns the weights
   * (`params` and `optState` above are freed then).
   */
  readonly engine?: FeatureTransferEngine;
}

/**
 * Source (cloned pretrained weights, frozen), target (fresh backbone from
 * `rng.derive('backbone')` and head from `rng.derive('head')`, as `scratch`
 * draws them), the pairs, and connectors when `connectors` is set.
 */
export function initFeatureTransfer<C extends OptimConfig & FeatureTransferOptions>(
  id: string,
  ctx: MethodContext<C>,
  opts: { connectors: boolean },
): FeatureTransferState<C> {
  if (!ctx.pretrained) {
    throw new Error(
      `method "${id}": needs the source-pretrained backbone (ctx.pretrained): it is the frozen source network`,
    );
  }
  const c = ctx.config;
  const sourceBackbone = ctx.backbone;
  const target = resolveTargetBackbone(id, c, sourceBackbone);
  const pairs = resolvePairs(
    id,
    c.pairs,
    sourceBackbone,
    resolveTaps(id, 'source', sourceBackbone, c.sourceTaps),
    target,
    resolveTaps(id, 'target', target, c.targetTaps),
  );
  const missing = Object.keys(sourceBackbone.paramShapes).filter((n) => !ctx.pretrained?.[n]);
  if (missing.length > 0) {
    throw new Error(
      `method "${id}": the pretrained weights lack ${missing.join(', ')} of the source backbone "${sourceBackbone.name}"`,
    );
  }
  const sourceParams = cloneParams(
    Object.fromEntries(
      Object.keys(sourceBackbone.paramShapes).map((n) => [n, ctx.pretrained?.[n] as tf.Tensor]),
    ),
  );
  const head = linearHead(target.featureDim, ctx.numClasses, 'head');
  const params = mergeParams(
    target.init(ctx.rng.derive('backbone')),
    head.init(ctx.rng.derive('head')),
    opts.connectors ? initConnectors(pairs, ctx.rng.derive('connectors')) : {},
  );
  // Everything trains at the full rate; normalisation statistics follow the
  // batches (training mode), never the optimizer.
  const model = initTrainedModel({
    backbone: target,
    params,
    config: c,
    totalSteps: ctx.totalSteps,
    isHead: () => true,
    backboneLrMultiplier: 1,
  });
  return {
    ...model,
    backbone: target,
    source: { backbone: sourceBackbone, params: sourceParams },
    head,
    pairs,
  };
}

export function featureTransferLogits(
  state: FeatureTransferState<OptimConfig & FeatureTransferOptions>,
  params: Params,
  x: tf.Tensor,
): tf.Tensor {
  return state.head.apply(params, state.backbone.apply(params, x).features);
}

/**
 * One step of the target optimizer on CE + `transferLoss`, which gets the
 * target's taps (those named by the pairs) and the source's, computed on
 * the same batch under no gradient. Core's trainStep: tidy, divergence
 * check, disposal of replaced tensors.
 */
export function featureTransferStep<C extends OptimConfig & FeatureTransferOptions>(
  state: FeatureTransferState<C>,
  batch: { x: tf.Tensor; y: tf.Tensor },
  step: number,
  transferLoss: (
    params: Params,
    targetTaps: Record<string, tf.Tensor>,
    sourceTaps: Record<string, tf.Tensor4D>,
  ) => tf.Scalar,
): StepResult<FeatureTransferState<C>> {
  const src = tf.tidy(() => sourceTaps(state.source, state.pairs, batch.x));
  try {
    const targetTapNames = [...new Set(state.pairs.map((p) => p.target))];
    return trainedModelStep(state, step, (p, norm) => {
      const out = norm.apply(p, batch.x, { taps: targetTapNames });
      const ce = softmaxCrossEntropy(state.head.apply(p, out.features), batch.y);
      return tf.add(ce, transferLoss(p, out.taps, src)) as tf.Scalar;
    });
  } finally {
    tf.dispose(Object.values(src));
  }
}

export async function disposeFeatureTransfer(
  state: FeatureTransferState<OptimConfig & FeatureTransferOptions>,
): Promise<void> {
  if (state.engine) await state.engine.dispose();
  else disposeTrainedModel(state);
  disposeParams(state.source.params);
}

/** The weights prediction reads: the engine's or the tfjs state's. */
export function featureTransferParams(
  state: FeatureTransferState<OptimConfig & FeatureTransferOptions>,
): Params {
  return state.engine ? state.engine.params() : state.params;
}
