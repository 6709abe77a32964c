/**
 * A LayerSpec backbone's forward pass as ONNX nodes in a graph being built:
 * the one forward chain behind both the exporter (weights as initializers,
 * inference mode) and the training engine (weights as graph inputs, batch
 * normalisation in training mode, possibly two passes in one graph).
 *
 * Layout: the input is `[N, …inputShape]` in tfjs's layout (NHWC for
 * images) and every returned value (features, taps) has its tfjs
 * counterpart's shape and element order. Inside, spatial values live in
 * NCHW, the layout ONNX Conv/MaxPool/GlobalAveragePool require: one
 * Transpose (perm [0,3,1,2]) feeds the first spatial layer, and a Transpose
 * back ([0,2,3,1]) is emitted only where a value must look like tfjs — a
 * Flatten (so flattened features keep tfjs's H·W·C order), a requested tap,
 * or the features. Value names: a layer's output in tfjs layout is named
 * after the layer (`conv1`), its NCHW form `conv1:nchw` (with the pass's
 * prefix in front). 'same' padding becomes explicit `pads` computed exactly
 * as tfjs does (the odd extra row/column goes at the bottom/right).
 */
import { attr, batchNormTraining, type OnnxGraphBuilder } from '@transferlab/graph';
import type { BackboneSpec } from '../backbone.js';
import { type BatchNormOptions, type LayerSpec, outputShape, residualProjects } from '../layers.js';

export interface EmitBackboneOptions {
  /** The input value, `[N, …inputShape]` in tfjs layout. */
  input: string;
  /**
   * The graph value of a parameter. Conv weights are asked for in ONNX's
   * layout `[cout, cin, kh, kw]` with `perm` = [3, 2, 0, 1], the permutation
   * from tfjs's `[kh, kw, cin, cout]` (`tfShape`): the exporter writes
   * transposed initializers, the engine a Transpose of its input.
   */
  weight: (name: string, tfShape: readonly number[], perm?: readonly number[]) => string;
  /** Batch statistics and running-statistic updates (PyTorch's `model.train()`). Default false. */
  training?: boolean;
  /** Prefix of every value and node name, so that two passes can share one graph. Default "". */
  prefix?: string;
  /** Layers whose outputs to return (tfjs layout). */
  taps?: readonly string[];
}

export interface EmittedBackbone {
  /** The features in tfjs layout, and their shape for one example. */
  features: string;
  featureShape: number[];
  taps: Record<string, string>;
  /** Training mode: the updated running statistics, keyed like the parameters. */
  statistics: Record<string, string>;
}

type Layout = 'tf' | 'nchw';
interface Val {
  name: string;
  layout: Layout;
  /** Shape of one example in tfjs layout. */
  shape: number[];
}

/** tfjs 'same' padding for one spatial dimension: [begin, end]. */
export function samePads(size: number, kernel: number, stride: number): [number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + kernel - size, 0);
  const begin = Math.floor(total / 2);
  return [begin, total - begin];
}

export function emitBackbone(
  g: OnnxGraphBuilder,
  spec: BackboneSpec,
  opts: EmitBackboneOptions,
): EmittedBackbone {
  const P = opts.prefix ?? '';
  const training = opts.training ?? false;
  const statistics: Record<string, string> = {};
  const tfForm = new Map<string, Val>();
  const nchwForm = new Map<string, Val>();
  const named = (n: string) => `${P}${n}`;

  // A value's key is its tfjs-layout name (layer name or input name).
  const asNchw = (v: Val, key: string): Val => {
    if (v.layout === 'nchw') return v;
    const cached = nchwForm.get(key);
    if (cached) return cached;
    if (v.shape.length !== 3)
      throw new Error(`emitBackbone: "${key}" is not a spatial [H, W, C] value`);
    const [h, w, c] = v.shape as [number, number, number];
    // One channel: [N, H, W, 1] and [N, 1, H, W] hold the same elements in the same order.
    const name =
      c === 1
        ? g.op('Reshape', [v.name, g.ints([0, 1, h, w], 'nchw_shape')], {}, named(`${key}:nchw`))
        : g.op('Transpose', [v.name], { perm: attr.ints([0, 3, 1, 2]) }, named(`${key}:nchw`));
    const out: Val = { name, layout: 'nchw', shape: v.shape };
    nchwForm.set(key, out);
    return out;
  };
  const asTf = (v: Val, key: string): Val => {
    if (v.layout === 'tf') return v;
    const cached = tfForm.get(key);
    if (cached) return cached;
    const name = g.op('Transpose', [v.name], { perm: attr.ints([0, 2, 3, 1]) }, named(key));
    const out: Val = { name, layout: 'tf', shape: v.shape };
    tfForm.set(key, out);
    return out;
  };

  const relu = (v: Val, name: string): Val => {
    const out = v.layout === 'tf' ? name : `${name}:nchw`;
    return { ...v, name: g.op('Relu', [v.name], {}, named(out), named(`${name}/Relu`)) };
  };
  const activate = (v: Val, activation: string | undefined, name: string): Val => {
    if (activation === 'relu') return relu(v, name);
    if (activation === 'square') {
      const out = v.layout === 'tf' ? name : `${name}:nchw`;
      return { ...v, name: g.op('Mul', [v.name, v.name], {}, named(out), named(`${name}/Square`)) };
    }
    return v;
  };

  /**
   * Batch normalisation reading `<prefix>.gamma/.beta/.running_mean/.running_var`:
   * the inference node (ONNX's momentum is the weight of the old running
   * value: 1 − PyTorch's), or training mode from primitive ops.
   */
  const batchNorm = (v: Val, prefix: string, o: BatchNormOptions, out: string): Val => {
    const c = v.shape[v.shape.length - 1] as number;
    const input = (suffix: string) => opts.weight(`${prefix}.${suffix}`, [c]);
    if (training) {
      const bn = batchNormTraining(
        g,
        v.name,
        {
          scale: input('gamma'),
          bias: input('beta'),
          runningMean: input('running_mean'),
          runningVar: input('running_var'),
        },
        { epsilon: o.epsilon ?? 1e-5, momentum: o.momentum ?? 0.1 },
      );
      statistics[`${prefix}.running_mean`] = bn.runningMean;
      statistics[`${prefix}.running_var`] = bn.runningVar;
      return { ...v, name: g.op('Identity', [bn.y], {}, named(out)) };
    }
    const name = g.op(
      'BatchNormalization',
      [v.name, input('gamma'), input('beta'), input('running_mean'), input('running_var')],
      {
        epsilon: attr.float(o.epsilon ?? 1e-5),
        momentum: attr.float(1 - (o.momentum ?? 0.1)),
      },
      named(out),
      named(`${prefix.replaceAll('.', '/')}/BatchNormalization`),
    );
    return { ...v, name };
  };

  /** A Conv node (NCHW in and out) reading the weights `<prefix>.weight` / `.bias`. */
  const conv = (
    v: Val,
    shape: number[],
    c: {
      prefix: string;
      filters: number;
      kernel: number;
      stride: number;
      padding: 'same' | 'valid';
      out: string;
    },
  ): Val => {
    const [h, w, cin] = shape as [number, number, number];
    const { kernel: k, stride: s, padding } = c;
    const [pt, pb] = padding === 'same' ? samePads(h, k, s) : [0, 0];
    const [pl, pr] = padding === 'same' ? samePads(w, k, s) : [0, 0];
    const weight = opts.weight(`${c.prefix}.weight`, [k, k, cin, c.filters], [3, 2, 0, 1]);
    const bias = opts.weight(`${c.prefix}.bias`, [c.filters]);
    const out = g.op(
      'Conv',
      [v.name, weight, bias],
      {
        kernel_shape: attr.ints([k, k]),
        strides: attr.ints([s, s]),
        pads: attr.ints([pt, pl, pb, pr]),
        dilations: attr.ints([1, 1]),
        group: attr.int(1),
      },
      named(c.out),
      named(`${c.prefix.replaceAll('.', '/')}/Conv`),
    );
    const oh = padding === 'same' ? Math.ceil(h / s) : Math.floor((h - k) / s) + 1;
    const ow = padding === 'same' ? Math.ceil(w / s) : Math.floor((w - k) / s) + 1;
    return { name: out, layout: 'nchw', shape: [oh, ow, c.filters] };
  };

  /**
   * A ReLU directly followed by a max pool runs after the pool instead:
   * relu(maxpool(x)) = maxpool(relu(x)) (ReLU is monotone), element for
   * element, and the gradient is the same too — the first maximum of a
   * window with a positive maximum is the same element before and after
   * the ReLU, and a window whose maximum is ≤ 0 gets no gradient either
   * way. The ReLU and its backward mask then cost a quarter (2×2 pool).
   * `deferRelu`: this layer leaves its ReLU to the pool after it;
   * `reluAfterPool`: this pool applies it.
   */
  let deferRelu = false;
  let reluAfterPool = false;

  const emitLayer = (layer: LayerSpec, x: Val, xKey: string, shape: number[]): Val => {
    const L = layer.name;
    switch (layer.kind) {
      case 'flatten': {
        const t = asTf(x, xKey);
        const size = shape.reduce((a, b) => a * b, 1);
        const name = g.op(
          'Flatten',
          [t.name],
          { axis: attr.int(1) },
          named(L),
          named(`${L}/Flatten`),
        );
        return { name, layout: 'tf', shape: [size] };
      }
      case 'dense': {
        const t = asTf(x, xKey);
        const inDim = shape[0] as number;
        const w = opts.weight(`${L}.weight`, [inDim, layer.units]);
        const b = opts.weight(`${L}.bias`, [layer.units]);
        const activated = layer.activation === 'relu' || layer.activation === 'square';
        const gemm = g.op(
          'Gemm',
          [t.name, w, b],
          {},
          named(activated ? `${L}:gemm` : L),
          named(`${L}/Gemm`),
        );
        return activate({ name: gemm, layout: 'tf', shape: [layer.units] }, layer.activation, L);
      }
      case 'conv2d': {
        const activated =
          !deferRelu && (layer.activation === 'relu' || layer.activation === 'square');
        const val = conv(asNchw(x, xKey), shape, {
          prefix: L,
          filters: layer.filters,
          kernel: layer.kernelSize,
          stride: layer.stride ?? 1,
          padding: layer.padding ?? 'same',
          out: activated || deferRelu ? `${L}:conv` : `${L}:nchw`,
        });
        return activated ? activate(val, layer.activation, L) : val;
      }
      case 'residual': {
        const v = asNchw(x, xKey);
        const s = layer.stride ?? 1;
        const f = layer.filters;
        const block = (
          prefix: string,
          kernel: number,
          stride: number,
          input: Val,
          inShape: number[],
          out: string,
        ) => conv(input, inShape, { prefix, filters: f, kernel, stride, padding: 'same', out });
        const c1 = block(`${L}.conv1`, 3, s, v, shape, `${L}:conv1`);
        const n1 = layer.batchNorm ? batchNorm(c1, `${L}.bn1`, {}, `${L}:bn1`) : c1;
        const r1 = g.op('Relu', [n1.name], {}, named(`${L}:relu1`), named(`${L}/conv1/Relu`));
        const c2raw = block(`${L}.conv2`, 3, 1, { ...c1, name: r1 }, c1.shape, `${L}:conv2`);
        const c2 = layer.batchNorm ? batchNorm(c2raw, `${L}.bn2`, {}, `${L}:bn2`) : c2raw;
        const projected = residualProjects(layer, shape)
          ? block(`${L}.proj`, 1, s, v, shape, `${L}:proj`)
          : undefined;
        const shortcut = !projected
          ? v
          : layer.batchNorm
            ? batchNorm(projected, `${L}.proj_bn`, {}, `${L}:proj_bn`)
            : projected;
        const sum = g.op('Add', [c2.name, shortcut.name], {}, named(`${L}:sum`), named(`${L}/Add`));
        return relu({ ...c2, name: sum }, L);
      }
      case 'batchNorm': {
        // Channel axis 1 in ONNX: NCHW for spatial values, [N, C] as it is.
        const v = shape.length === 3 ? asNchw(x, xKey) : asTf(x, xKey);
        return batchNorm(v, L, layer, v.layout === 'tf' ? L : `${L}:nchw`);
      }
      case 'maxPool': {
        const v = asNchw(x, xKey);
        const [h, w, c] = shape as [number, number, number];
        const s = layer.stride ?? layer.size;
        const pooled = g.op(
          'MaxPool',
          [v.name],
          {
            kernel_shape: attr.ints([layer.size, layer.size]),
            strides: attr.ints([s, s]),
            pads: attr.ints([0, 0, 0, 0]),
          },
          named(reluAfterPool ? `${L}:pooled` : `${L}:nchw`),
          named(`${L}/MaxPool`),
        );
        const out: Val = {
          name: pooled,
          layout: 'nchw',
          shape: [Math.floor((h - layer.size) / s) + 1, Math.floor((w - layer.size) / s) + 1, c],
        };
        return reluAfterPool ? relu(out, L) : out;
      }
      case 'globalAvgPool': {
        const v = asNchw(x, xKey);
        const c = shape[2] as number;
        const pooled = g.op(
          'GlobalAveragePool',
          [v.name],
          {},
          named(`${L}:pooled`),
          named(`${L}/GAP`),
        );
        const name = g.op(
          'Flatten',
          [pooled],
          { axis: attr.int(1) },
          named(L),
          named(`${L}/Flatten`),
        );
        return { name, layout: 'tf', shape: [c] };
      }
      case 'relu':
        return deferRelu ? x : relu(x, L);
    }
  };

  let cur: Val = { name: opts.input, layout: 'tf', shape: [...spec.inputShape] };
  let curKey = opts.input;
  let inShape: number[] = [...spec.inputShape];
  const wanted = new Set(opts.taps ?? []);
  const taps: Record<string, string> = {};
  for (let i = 0; i < spec.layers.length; i++) {
    const layer = spec.layers[i] as LayerSpec;
    // The pool reads the pre-ReLU value: only when nothing else reads this layer's output.
    const pendingRelu = deferRelu;
    deferRelu =
      spec.layers[i + 1]?.kind === 'maxPool' &&
      !wanted.has(layer.name) &&
      ((layer.kind === 'conv2d' && layer.activation === 'relu') || layer.kind === 'relu');
    reluAfterPool = layer.kind === 'maxPool' && pendingRelu;
    const next = emitLayer(layer, cur, curKey, inShape);
    const expected = outputShape(layer, inShape);
    if (next.shape.join() !== expected.join())
      throw new Error(
        `emitBackbone: internal shape mismatch at "${layer.name}": [${next.shape}] vs [${expected}]`,
      );
    cur = next;
    curKey = layer.name;
    inShape = next.shape;
    if (wanted.has(layer.name)) taps[layer.name] = asTf(cur, curKey).name;
  }
  for (const t of wanted)
    if (!(t in taps))
      throw new Error(
        `emitBackbone: no layer "${t}" in "${spec.name}" (layers: ${spec.layers.map((l) => l.name).join(', ')})`,
      );
  const features = asTf(cur, curKey);
  return { features: features.name, featureShape: features.shape, taps, statistics };
}
