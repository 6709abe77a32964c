/**
 * A whole training step — forward, backward and the optimizer update — as
 * one ONNX graph, run by onnxruntime-node: the fast path DESIGN.md names for
 * closing the gap between tfjs (wasm) and PyTorch on small networks.
 *
 * What it compiles: a backbone of flatten + dense layers (activation relu,
 * square or linear), a linear head, mean softmax cross-entropy, and the
 * update of core's `sgd` (momentum, coupled weight decay: PyTorch's
 * convention g += wd·p; v = μ·v + g; p −= lr·v) or `adam` (bias-corrected,
 * optionally AdamW), slots starting at zero.
 * The backward pass is written out by hand (reverse-mode through Gemm, the
 * activations and log-softmax); a test checks the weights after several
 * steps against tfjs's autodiff and core's optimizer.
 *
 * Graph interface. Inputs: `x` [N, …inputShape] float32, `y` [N] int64
 * labels, `lr` [] float32 (the step's learning rate, schedule applied),
 * for Adam `c1`, `c2` [] (the bias corrections 1 − β^t), and for every
 * parameter `<name>` its value and its optimizer slots (`v:<name>` SGD's
 * velocity; `m:<name>`, `v:<name>` Adam's moments). Outputs: `loss` [] and,
 * per parameter and slot, `<name>:next`.
 * Everything stays in ONNX's row-major layout, which for dense layers is
 * tfjs's: a dense weight is [in, out] (Gemm with transB = 0).
 */
import type { Params } from '@transferlab/core';
import { attr, DT, loadOnnxRuntime, OnnxGraphBuilder } from '@transferlab/graph';
import { requireSpec, type SpecBackbone } from '../backbone.js';
import type { LinearHead } from '../head.js';

export interface OnnxTrainStepOptions {
  /** 'sgd' (default) or 'adam', each exactly as core's optimizer of that name. */
  optimizer?: 'sgd' | 'adam';
  /** SGD momentum μ in [0, 1). Default 0. */
  momentum?: number;
  /** L2 weight decay: added to the gradient (coupled), or AdamW's decoupled decay with `decoupled`. Default 0. */
  weightDecay?: number;
  /** Adam's β₁, β₂, ε (defaults 0.9, 0.999, 1e-8) and AdamW's decoupled decay. */
  beta1?: number;
  beta2?: number;
  eps?: number;
  decoupled?: boolean;
  /** Only these parameters are updated (the rest pass through unchanged). Default: all. */
  trainable?: readonly string[];
}

interface DenseInfo {
  name: string;
  inDim: number;
  units: number;
  activation: 'relu' | 'square' | 'linear';
}

/** The dense layers of a flatten + dense backbone, or a clear error naming the layer that is not. */
function denseLayers(backbone: SpecBackbone): DenseInfo[] {
  const spec = requireSpec(backbone, 'compileTrainStep');
  let dim = spec.inputShape.reduce((a, b) => a * b, 1);
  const out: DenseInfo[] = [];
  for (const layer of spec.layers) {
    if (layer.kind === 'flatten') continue;
    if (layer.kind !== 'dense') {
      throw new Error(
        `compileTrainStep: backbone "${spec.name}" has a ${layer.kind} layer ("${layer.name}"); the ONNX training step supports flatten and dense layers only`,
      );
    }
    out.push({
      name: layer.name,
      inDim: dim,
      units: layer.units,
      activation: layer.activation ?? 'linear',
    });
    dim = layer.units;
  }
  return out;
}

/** Serialize one SGD training step of `backbone` + `head` as an ONNX model (bytes). */
export function buildTrainStepGraph(
  backbone: SpecBackbone,
  head: LinearHead,
  opts: OnnxTrainStepOptions = {},
): Uint8Array {
  const adam = opts.optimizer === 'adam';
  if (opts.optimizer !== undefined && opts.optimizer !== 'sgd' && !adam)
    throw new Error(`compileTrainStep: optimizer must be 'sgd' or 'adam', got "${opts.optimizer}"`);
  const momentum = opts.momentum ?? 0;
  const wd = opts.weightDecay ?? 0;
  if (!(momentum >= 0 && momentum < 1))
    throw new Error(`compileTrainStep: momentum must be in [0, 1), got ${momentum}`);
  if (!(wd >= 0)) throw new Error(`compileTrainStep: weightDecay must be ≥ 0, got ${wd}`);
  const b1 = opts.beta1 ?? 0.9;
  const b2 = opts.beta2 ?? 0.999;
  const eps = opts.eps ?? 1e-8;
  // The optimizer's per-parameter slots, fed in and taken out each step.
  const slotPrefixes = adam ? ['m:', 'v:'] : momentum > 0 ? ['v:'] : [];
  const layers = denseLayers(backbone);
  const featureDim = layers.at(-1)?.units ?? backbone.featureDim;
  if (head.inDim !== featureDim)
    throw new Error(
      `compileTrainStep: head expects ${head.inDim} features, backbone gives ${featureDim}`,
    );
  const shapes: Record<string, number[]> = {};
  for (const l of layers) {
    shapes[`${l.name}.weight`] = [l.inDim, l.units];
    shapes[`${l.name}.bias`] = [l.units];
  }
  shapes[`${head.prefix}.weight`] = [head.inDim, head.numClasses];
  shapes[`${head.prefix}.bias`] = [head.numClasses];
  const trainable = new Set(opts.trainable ?? Object.keys(shapes));
  for (const n of trainable)
    if (!(n in shapes))
      throw new Error(
        `compileTrainStep: unknown trainable parameter "${n}" (have: ${Object.keys(shapes).join(', ')})`,
      );

  const g = new OnnxGraphBuilder(`${backbone.name}-train-step`);
  g.input('x', ['N', ...backbone.inputShape]);
  g.input('y', ['N'], DT.INT64);
  g.input('lr', []);
  if (adam) {
    // Bias corrections 1 − β^t, computed by the caller from the step count.
    g.input('c1', []);
    g.input('c2', []);
  }
  for (const [n, s] of Object.entries(shapes)) {
    g.input(n, s);
    if (trainable.has(n)) for (const prefix of slotPrefixes) g.input(`${prefix}${n}`, s);
  }
  const i64 = (name: string, values: number[]) => g.int64Initializer(name, values, [values.length]);
  const axis0 = i64('axes:0', [0]);
  const axis1 = i64('axes:1', [1]);

  // Forward, keeping every layer's input and pre-activation for the backward pass.
  let h = g.op('Flatten', ['x'], { axis: attr.int(1) }, 'h:input');
  const inputs: string[] = [];
  const pre: string[] = [];
  for (const l of layers) {
    inputs.push(h);
    const z = g.op('Gemm', [h, `${l.name}.weight`, `${l.name}.bias`], {}, `${l.name}:z`);
    pre.push(z);
    h =
      l.activation === 'relu'
        ? g.op('Relu', [z], {}, `${l.name}:h`)
        : l.activation === 'square'
          ? g.op('Mul', [z, z], {}, `${l.name}:h`)
          : z;
  }
  const logits = g.op('Gemm', [h, `${head.prefix}.weight`, `${head.prefix}.bias`], {}, 'logits');

  // Mean softmax cross-entropy and its gradient (softmax − one-hot) / N.
  const depthValues = [
    g.int64Initializer('onehot:depth', [head.numClasses], []),
    g.initializer('onehot:values', [0, 1], [2]),
  ];
  const oneHot = g.op('OneHot', ['y', ...depthValues], { axis: attr.int(-1) }, 'onehot');
  const logp = g.op('LogSoftmax', [logits], { axis: attr.int(1) }, 'logp');
  const picked = g.op('ReduceSum', [g.op('Mul', [oneHot, logp]), axis1], { keepdims: attr.int(0) });
  g.op(
    'Neg',
    [g.op('ReduceMean', [picked], { axes: attr.ints([0]), keepdims: attr.int(0) })],
    {},
    'loss',
  );
  const n = g.op(
    'Cast',
    [
      g.op('Gather', [g.op('Shape', ['x']), g.int64Initializer('zero', [0], [])], {
        axis: attr.int(0),
      }),
    ],
    { to: attr.int(DT.FLOAT) },
    'n',
  );
  let dOut = g.op('Div', [g.op('Sub', [g.op('Exp', [logp]), oneHot]), n], {}, 'd:logits');

  // Backward through the head and the dense layers, last to first.
  const grads: Record<string, string> = {};
  const backLinear = (prefix: string, input: string, dz: string, needInput: boolean) => {
    grads[`${prefix}.weight`] = g.op(
      'Gemm',
      [input, dz],
      { transA: attr.int(1) },
      `g:${prefix}.weight`,
    );
    grads[`${prefix}.bias`] = g.op(
      'ReduceSum',
      [dz, axis0],
      { keepdims: attr.int(0) },
      `g:${prefix}.bias`,
    );
    return needInput
      ? g.op('Gemm', [dz, `${prefix}.weight`], { transB: attr.int(1) }, `d:${prefix}:in`)
      : '';
  };
  dOut = backLinear(head.prefix, h, dOut, layers.length > 0);
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i] as DenseInfo;
    const z = pre[i] as string;
    const dz =
      l.activation === 'relu'
        ? // tfjs's ReLU gradient is 0 at 0: the mask is z > 0.
          g.op('Mul', [
            dOut,
            g.op('Cast', [g.op('Greater', [z, g.initializer(`${l.name}:zero`, [0], [])])], {
              to: attr.int(DT.FLOAT),
            }),
          ])
        : l.activation === 'square'
          ? g.op('Mul', [dOut, g.op('Add', [z, z])])
          : dOut;
    dOut = backLinear(l.name, inputs[i] as string, dz, i > 0);
  }

  const scalar = (name: string, value: number) => g.initializer(name, [value], []);
  const wdValue = wd > 0 ? scalar('wd', wd) : '';
  const coupled = wd > 0 && !(adam && opts.decoupled);
  const muValue = !adam && momentum > 0 ? scalar('momentum', momentum) : '';
  const adamConst = adam
    ? {
        b1: scalar('beta1', b1),
        oneMinusB1: scalar('1-beta1', 1 - b1),
        b2: scalar('beta2', b2),
        oneMinusB2: scalar('1-beta2', 1 - b2),
        eps: scalar('eps', eps),
      }
    : undefined;
  for (const [name, s] of Object.entries(shapes)) {
    if (!trainable.has(name)) {
      g.op('Identity', [name], {}, `${name}:next`);
      g.output(`${name}:next`, s);
      continue;
    }
    let grad = grads[name] as string;
    if (coupled) grad = g.op('Add', [grad, g.op('Mul', [name, wdValue])]);
    let step = grad;
    if (adamConst) {
      // Adam (as core's adam): m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²;
      // p −= lr·(m/c₁)/(√(v/c₂) + ε); AdamW also p −= lr·wd·p.
      const c = adamConst;
      const m = g.op(
        'Add',
        [g.op('Mul', [`m:${name}`, c.b1]), g.op('Mul', [grad, c.oneMinusB1])],
        {},
        `m:${name}:next`,
      );
      const v = g.op(
        'Add',
        [g.op('Mul', [`v:${name}`, c.b2]), g.op('Mul', [g.op('Mul', [grad, grad]), c.oneMinusB2])],
        {},
        `v:${name}:next`,
      );
      g.output(`m:${name}:next`, s);
      g.output(`v:${name}:next`, s);
      step = g.op('Div', [
        g.op('Div', [m, 'c1']),
        g.op('Add', [g.op('Sqrt', [g.op('Div', [v, 'c2'])]), c.eps]),
      ]);
      if (wd > 0 && opts.decoupled) step = g.op('Add', [step, g.op('Mul', [name, wdValue])]);
    } else if (momentum > 0) {
      // SGD (as core's sgd and PyTorch): v = μv + g; p −= lr·v.
      step = g.op('Add', [g.op('Mul', [`v:${name}`, muValue]), grad], {}, `v:${name}:next`);
      g.output(`v:${name}:next`, s);
    }
    g.op('Sub', [name, g.op('Mul', [step, 'lr'])], {}, `${name}:next`);
    g.output(`${name}:next`, s);
  }
  g.output('loss', []);
  return g.toBytes({
    opset: 13,
    docString: `transferlab SGD training step of ${backbone.name} + ${head.prefix}`,
  });
}

export interface OnnxTrainer {
  /** One step on `n` examples (row-major x, labels y) at learning rate `lr`; returns the loss before the update. */
  step(x: Float32Array, y: Int32Array, n: number, lr: number): Promise<number>;
  /** The current weights, by parameter name (copies). */
  params(): Record<string, Float32Array>;
  dispose(): Promise<void>;
}

/**
 * Compile the training step of `backbone` + `head` and start an onnxruntime
 * session for it, from the weights in `params` (tfjs tensors, read once).
 * Weights and velocities live in JS memory between steps; each step feeds
 * them in and takes the updated ones out.
 */
export async function compileTrainStep(
  backbone: SpecBackbone,
  head: LinearHead,
  params: Params,
  opts: OnnxTrainStepOptions & { intraOpNumThreads?: number } = {},
): Promise<OnnxTrainer> {
  const bytes = buildTrainStepGraph(backbone, head, opts);
  const ort = await loadOnnxRuntime();
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: opts.intraOpNumThreads ?? 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const isSlot = (name: string) => name.startsWith('m:') || name.startsWith('v:');
  const names = session.outputNames
    .filter((o) => o.endsWith(':next') && !isSlot(o))
    .map((o) => o.slice(0, -':next'.length));
  const values: Record<string, Float32Array> = {};
  const dims: Record<string, number[]> = {};
  for (const name of names) {
    const t = params[name];
    if (!t) {
      await session.release();
      throw new Error(
        `compileTrainStep: missing parameter "${name}" (have: ${Object.keys(params).join(', ')})`,
      );
    }
    values[name] = Float32Array.from(t.dataSync());
    dims[name] = [...t.shape];
  }
  // Optimizer slots (`v:<name>` for SGD momentum, `m:` and `v:` for Adam) start at zero.
  const slots: Record<string, Float32Array> = {};
  for (const input of session.inputNames)
    if (isSlot(input)) slots[input] = new Float32Array(values[input.slice(2)]?.length ?? 0);
  const adam = opts.optimizer === 'adam';
  const b1 = opts.beta1 ?? 0.9;
  const b2 = opts.beta2 ?? 0.999;
  let t = 0;
  const exampleSize = backbone.inputShape.reduce((a, b) => a * b, 1);
  let disposed = false;
  return {
    async step(x, y, n, lr) {
      if (disposed) throw new Error('compileTrainStep: trainer used after dispose()');
      if (x.length !== n * exampleSize || y.length !== n)
        throw new Error(
          `compileTrainStep: ${n} examples need ${n * exampleSize} inputs and ${n} labels, got ${x.length} and ${y.length}`,
        );
      const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {
        x: new ort.Tensor('float32', x, [n, ...backbone.inputShape]),
        y: new ort.Tensor(
          'int64',
          BigInt64Array.from(y, (v) => BigInt(v)),
          [n],
        ),
        lr: new ort.Tensor('float32', Float32Array.of(lr), []),
      };
      if (adam) {
        const step = t + 1;
        feeds.c1 = new ort.Tensor('float32', Float32Array.of(1 - b1 ** step), []);
        feeds.c2 = new ort.Tensor('float32', Float32Array.of(1 - b2 ** step), []);
      }
      for (const name of names)
        feeds[name] = new ort.Tensor('float32', values[name] as Float32Array, dims[name]);
      for (const [slot, data] of Object.entries(slots))
        feeds[slot] = new ort.Tensor('float32', data, dims[slot.slice(2)]);
      const out = await session.run(feeds);
      for (const name of names) values[name] = out[`${name}:next`]?.data as Float32Array;
      for (const slot of Object.keys(slots))
        slots[slot] = out[`${slot}:next`]?.data as Float32Array;
      t++;
      const loss = out.loss;
      if (!loss) throw new Error('compileTrainStep: onnxruntime returned no loss');
      return (loss.data as Float32Array)[0] as number;
    },
    params: () => Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v.slice()])),
    async dispose() {
      if (disposed) return;
      disposed = true;
      await session.release();
    },
  };
}
