/**
 * Reverse-mode automatic differentiation as a graph → graph transformation:
 * the gradient nodes of `loss` with respect to chosen values are appended to
 * the same graph, op by op from the rule table (`ops/`). What the rules emit
 * are ordinary ops with rules of their own, so the result can be
 * differentiated again (second-order gradients).
 */
import type { GraphNode, OnnxGraphBuilder } from './builder.js';
import { OP_RULES } from './ops/index.js';
import { sameShape } from './ops/util.js';
import { DT } from './proto.js';

export interface GradientOptions {
  /** The gradient fed into `loss` (default: ones shaped like it, i.e. 1 for a scalar loss). */
  seed?: string;
  /** Prefix of the names given to the gradients: `<prefix><value>`. Default "grad:". */
  prefix?: string;
}

function isFloat(g: OnnxGraphBuilder, name: string): boolean {
  const t = g.info(name).elemType;
  return t === DT.FLOAT || t === DT.DOUBLE || t === DT.FLOAT16;
}

/**
 * Append ∂loss/∂v for every v in `wrt` to `g`; returns the gradient value
 * names by `wrt` name. A value the loss does not depend on gets an explicit
 * zero gradient. Throws, naming the op and the node, when the gradient must
 * flow through an op that has no rule.
 */
export function addGradients(
  g: OnnxGraphBuilder,
  loss: string,
  wrt: readonly string[],
  opts: GradientOptions = {},
): Record<string, string> {
  const prefix = opts.prefix ?? 'grad:';
  for (const w of wrt) g.info(w);
  const nodes = g.nodes.slice();
  const firstGradNode = nodes.length;

  // The node producing each value (indexed lazily as rules append nodes).
  const producers = new Map<string, GraphNode>();
  let indexed = 0;
  const producer = (value: string): GraphNode | undefined => {
    for (; indexed < g.nodes.length; indexed++)
      for (const o of (g.nodes[indexed] as GraphNode).outputs)
        producers.set(o, g.nodes[indexed] as GraphNode);
    return producers.get(value);
  };
  /**
   * A gradient that is an Expand (a reduction's gradient spread over its
   * input): the value before the Expand, which broadcasts to the same result.
   * A rule multiplying it by a full-shaped value, or a sum with a
   * full-shaped contribution, broadcasts it instead of reading a
   * materialised copy (an Expand left unused is pruned at the end).
   */
  const compact = (value: string): string | undefined => {
    const n = producer(value);
    if (n?.opType !== 'Expand' || !g.dims(n.inputs[0] as string)) return undefined;
    return n.inputs[0];
  };

  // Values that depend on a differentiated value (forward from `wrt`) …
  const dependent = new Set<string>(wrt);
  for (const n of nodes) {
    const rule = OP_RULES[n.opType];
    if (rule?.nonDifferentiable || n.outputs.some((o) => g.isStopped(o))) continue;
    if (n.inputs.some((i) => dependent.has(i)))
      for (const o of n.outputs) if (o && isFloat(g, o)) dependent.add(o);
  }
  // … and that the loss depends on (backward from `loss`).
  const needed = new Set<string>([loss]);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i] as GraphNode;
    if (n.outputs.some((o) => needed.has(o))) for (const inp of n.inputs) needed.add(inp);
  }

  // Gradient contributions per value, summed when a value feeds several nodes.
  const contributions = new Map<string, string[]>();
  const contribute = (value: string, grad: string) => {
    const list = contributions.get(value);
    if (list) list.push(grad);
    else contributions.set(value, [grad]);
  };
  const total = (value: string): string | undefined => {
    const list = contributions.get(value);
    if (!list || list.length === 0) return undefined;
    if (list.length === 1) return list[0];
    // Expanded contributions join a full-shaped one by broadcasting (Sum broadcasts).
    const dims = g.dims(value);
    const full = list.filter((c) => !compact(c) && sameShape(g.dims(c), dims));
    const terms = full.length > 0 ? list.map((c) => compact(c) ?? c) : list;
    const sum = g.op('Sum', terms);
    g.setDims(sum, dims ?? []);
    contributions.set(value, [sum]);
    return sum;
  };

  const lossDims = g.dims(loss);
  const seed =
    opts.seed ??
    (lossDims && lossDims.length === 0
      ? g.scalar(1, 'grad_seed')
      : g.op('Add', [g.op('Mul', [loss, g.scalar(0, 'zero')]), g.scalar(1, 'one')]));
  contribute(loss, seed);

  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i] as GraphNode;
    if (!node.outputs.some((o) => dependent.has(o) && needed.has(o))) continue;
    const dOut = node.outputs.map((o) => (dependent.has(o) ? total(o) : undefined));
    if (dOut.every((d) => d === undefined)) continue;
    const rule = OP_RULES[node.opType];
    if (rule?.nonDifferentiable) continue;
    if (!rule?.grad)
      throw new Error(
        `autodiff: no gradient rule for op "${node.opType}" (node "${node.name}"); ` +
          'the training engine cannot compile this model — run it with --engine tfjs',
      );
    const needs = (k: number) => {
      const inp = node.inputs[k];
      return !!inp && dependent.has(inp) && isFloat(g, inp);
    };
    let grads: (string | undefined)[];
    try {
      grads = rule.grad({ g, node, dOut, needs, compact });
    } catch (err) {
      throw new Error(
        `autodiff: ${node.opType} node "${node.name}": ${(err as Error).message}; ` +
          'the training engine cannot compile this model — run it with --engine tfjs',
      );
    }
    node.inputs.forEach((inp, k) => {
      const gr = grads[k];
      if (gr && needs(k)) contribute(inp, gr);
    });
  }

  const out: Record<string, string> = {};
  for (const w of wrt) {
    const gr = total(w);
    const name = `${prefix}${w}`;
    if (gr) {
      g.op('Identity', [gr], {}, name);
    } else {
      // Not reached by the loss: an explicit zero of the value's shape.
      g.op('Mul', [w, g.scalar(0, 'zero')], {}, name);
    }
    out[w] = name;
  }
  pruneDeadNodes(g, firstGradNode, Object.values(out));
  return out;
}

/**
 * Drop the nodes from index `from` on whose outputs nothing reads
 * (onnxruntime runs every node of a graph, used or not): gradient pieces a
 * rule emitted and a later rule bypassed, or the layers of a forward pass
 * past the deepest value a loss reads. `keep` and graph outputs stay.
 */
export function pruneDeadNodes(g: OnnxGraphBuilder, from = 0, keep: readonly string[] = []): void {
  const roots = new Set([...keep, ...g.outputNames()]);
  const uses = new Map<string, number>();
  for (const n of g.nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  const dead = new Set<GraphNode>();
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = g.nodes.length - 1; i >= from; i--) {
      const n = g.nodes[i] as GraphNode;
      if (dead.has(n) || n.outputs.some((o) => roots.has(o) || (uses.get(o) ?? 0) > 0)) continue;
      dead.add(n);
      for (const inp of n.inputs) uses.set(inp, (uses.get(inp) ?? 0) - 1);
      changed = true;
    }
  }
  if (dead.size === 0) return;
  const alive = g.nodes.filter((n) => !dead.has(n));
  g.nodes.length = 0;
  g.nodes.push(...alive);
}
