/**
 * Optimizers as graph fragments: the update of every trained parameter
 * appended to a graph that already holds its gradient, so that forward,
 * backward and update run as one onnxruntime call. The rules are exactly
 * those of transferlab's functional optimizers (and PyTorch's):
 *
 * - SGD: g += wd·p (coupled decay); v = μ·v + g; p −= lr·(nesterov ? g + μ·v : v)
 * - Adam: g += wd·p unless decoupled; m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²;
 *   p −= lr·(m/c₁)/(√(v/c₂) + ε); AdamW also p −= lr·wd·p
 *
 * The learning rate (schedule applied) and Adam's bias corrections
 * c₁ = 1 − β₁ᵗ, c₂ = 1 − β₂ᵗ are graph inputs fed every step, so schedules
 * need no recompilation; a per-parameter multiplier (a backbone trained
 * slower than its head) is a constant.
 */
import type { OnnxGraphBuilder } from './builder.js';

export type GraphOptimizer =
  | { kind: 'sgd'; momentum?: number; weightDecay?: number; nesterov?: boolean }
  | {
      kind: 'adam';
      beta1?: number;
      beta2?: number;
      eps?: number;
      weightDecay?: number;
      /** AdamW's decoupled decay instead of an L2 term in the gradient. */
      decoupled?: boolean;
    };

export interface UpdatedParam {
  name: string;
  /** The gradient value in the graph. */
  grad: string;
  /** Learning-rate multiplier (1 for the head, e.g. 0.03 for a pretrained backbone). */
  lrScale: number;
}

/** Names of the fed scalars. */
export const OPTIMIZER_INPUTS = { lr: 'lr', c1: 'adam:c1', c2: 'adam:c2' } as const;

export function validateGraphOptimizer(opt: GraphOptimizer): void {
  const wd = opt.weightDecay ?? 0;
  if (!(wd >= 0)) throw new Error(`optimizer: weightDecay must be ≥ 0, got ${wd}`);
  if (opt.kind === 'sgd') {
    const m = opt.momentum ?? 0;
    if (!(m >= 0 && m < 1)) throw new Error(`sgd: momentum must be in [0, 1), got ${m}`);
  } else if (opt.kind !== 'adam') {
    throw new Error(
      `optimizer: unknown kind "${(opt as { kind: string }).kind}" (valid: sgd, adam)`,
    );
  }
}

/**
 * Append the update of `params` to `g`. The graph gets inputs `lr` (and
 * `adam:c1`, `adam:c2` for Adam) and, per parameter and slot, an input
 * `<slot>:<param>` of the parameter's dims; it computes `<param>:next` and
 * `<slot>:<param>:next`. Returns the slot input names.
 */
export function appendOptimizer(
  g: OnnxGraphBuilder,
  params: readonly UpdatedParam[],
  opt: GraphOptimizer,
  names: { lr?: string } = {},
): { slotInputs: string[] } {
  validateGraphOptimizer(opt);
  const wd = opt.weightDecay ?? 0;
  // A second optimizer in the same graph (a bilevel method's meta-optimizer) names its own rate.
  const lrName = names.lr ?? OPTIMIZER_INPUTS.lr;
  const lr = g.has(lrName) ? lrName : g.input(lrName, []);
  const slotInputs: string[] = [];
  const adam = opt.kind === 'adam';
  const c1 = adam ? g.input(OPTIMIZER_INPUTS.c1, []) : '';
  const c2 = adam ? g.input(OPTIMIZER_INPUTS.c2, []) : '';
  const constant = (v: number) => g.scalar(v, 'opt');
  for (const p of params) {
    const dims = g.dims(p.name);
    if (!dims) throw new Error(`optimizer: parameter "${p.name}" has no known shape`);
    const stepLr = p.lrScale === 1 ? lr : g.op('Mul', [lr, constant(p.lrScale)]);
    const coupled = wd > 0 && !(adam && opt.kind === 'adam' && opt.decoupled);
    const grad = coupled ? g.op('Add', [p.grad, g.op('Mul', [p.name, constant(wd)])]) : p.grad;
    let direction: string;
    if (opt.kind === 'adam') {
      const b1 = opt.beta1 ?? 0.9;
      const b2 = opt.beta2 ?? 0.999;
      const m0 = g.input(`m:${p.name}`, dims);
      const v0 = g.input(`v:${p.name}`, dims);
      slotInputs.push(m0, v0);
      const m = g.op(
        'Add',
        [g.op('Mul', [m0, constant(b1)]), g.op('Mul', [grad, constant(1 - b1)])],
        {},
        `m:${p.name}:next`,
      );
      const v = g.op(
        'Add',
        [
          g.op('Mul', [v0, constant(b2)]),
          g.op('Mul', [g.op('Mul', [grad, grad]), constant(1 - b2)]),
        ],
        {},
        `v:${p.name}:next`,
      );
      g.output(m);
      g.output(v);
      direction = g.op('Div', [
        g.op('Div', [m, c1]),
        g.op('Add', [g.op('Sqrt', [g.op('Div', [v, c2])]), constant(opt.eps ?? 1e-8)]),
      ]);
      if (wd > 0 && opt.decoupled)
        direction = g.op('Add', [direction, g.op('Mul', [p.name, constant(wd)])]);
    } else if ((opt.momentum ?? 0) > 0) {
      const mu = opt.momentum as number;
      const v0 = g.input(`v:${p.name}`, dims);
      slotInputs.push(v0);
      const v = g.op('Add', [g.op('Mul', [v0, constant(mu)]), grad], {}, `v:${p.name}:next`);
      g.output(v);
      direction = opt.nesterov ? g.op('Add', [grad, g.op('Mul', [v, constant(mu)])]) : v;
    } else {
      direction = grad;
    }
    g.op('Sub', [p.name, g.op('Mul', [direction, stepLr])], {}, `${p.name}:next`);
    g.output(`${p.name}:next`);
  }
  return { slotInputs };
}

/** Adam's bias corrections for update number `t` (1-based). */
export function adamCorrections(opt: GraphOptimizer, t: number): { c1: number; c2: number } {
  if (opt.kind !== 'adam') return { c1: 1, c2: 1 };
  return { c1: 1 - (opt.beta1 ?? 0.9) ** t, c2: 1 - (opt.beta2 ?? 0.999) ** t };
}

/**
 * One SGD update of a graph value, as nodes only (no inputs, no outputs):
 * g' = g + wd·p; v' = μ·v + g'; p' = p − lr·v' (plain g' without momentum)
 * — the update `appendOptimizer` applies, on values a bilevel method's
 * look-ahead differentiates through. `grad` undefined: a parameter the
 * look-ahead's loss does not reach, which momentum and decay still move (as
 * in PyTorch). `velocity` is required when momentum > 0.
 */
export function sgdStepValues(
  g: OnnxGraphBuilder,
  args: { param: string; grad?: string; velocity?: string; lr: string },
  opt: { momentum?: number; weightDecay?: number },
): { param: string; velocity?: string } {
  const mu = opt.momentum ?? 0;
  const wd = opt.weightDecay ?? 0;
  const constant = (v: number) => g.scalar(v, 'opt');
  const decay = wd > 0 ? g.op('Mul', [args.param, constant(wd)]) : undefined;
  const terms = [args.grad, decay].filter((t): t is string => t !== undefined);
  let grad = terms.length === 2 ? g.op('Add', terms) : terms[0];
  let velocity: string | undefined;
  if (mu > 0) {
    if (!args.velocity) throw new Error(`sgdStepValues: "${args.param}" needs its velocity`);
    const carried = g.op('Mul', [args.velocity, constant(mu)]);
    velocity = grad ? g.op('Add', [carried, grad]) : carried;
    grad = velocity;
  }
  if (!grad) return { param: args.param, ...(velocity ? { velocity } : {}) };
  const param = g.op('Sub', [args.param, g.op('Mul', [grad, args.lr])]);
  return { param, ...(velocity ? { velocity } : {}) };
}
