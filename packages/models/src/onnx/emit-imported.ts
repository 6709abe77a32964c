/**
 * An imported ONNX backbone's forward pass re-emitted into a graph being
 * built, so the training engine can differentiate it: the nodes the
 * features need, with the weights as the engine's parameter values, the
 * constants (shapes, axes, pads) as initializers, and BatchNormalization in
 * training mode as primitive ops when the backbone trains. Nodes from
 * opsets before 13 that took axes or bounds as attributes are rewritten to
 * the input form the engine's opset (17) expects.
 */
import {
  attr,
  batchNormTraining,
  DIFFERENTIABLE_OPS,
  DT,
  floatTensorProto,
  int64TensorProto,
  type OnnxAttr,
  type OnnxGraphBuilder,
  OP_RULES,
} from '@transferlab/graph';
import type { EmitBackboneOptions, EmittedBackbone } from './emit.js';
import type { AttrValue, HostValue, NodeInfo } from './ops.js';

export interface ImportedGraph {
  readonly source: string;
  readonly opset: number;
  readonly inputName: string;
  readonly featuresName: string;
  /** The nodes the features need, in topological order. */
  readonly nodes: readonly NodeInfo[];
  readonly paramShapes: Readonly<Record<string, readonly number[]>>;
  /** Initializers read as constants (shapes, axes, pads, bounds). */
  readonly constants: ReadonlyMap<string, HostValue>;
}

function toOnnxAttr(a: AttrValue, what: string): OnnxAttr {
  switch (a.kind) {
    case 'int':
      return attr.int(a.v);
    case 'float':
      return attr.float(a.v);
    case 'ints':
      return attr.ints(a.v);
    case 'floats':
      return attr.floats(a.v);
    case 'string':
      return attr.string(a.v);
    case 'tensor':
      return {
        type: 'tensor',
        value:
          a.v.kind === 'float'
            ? floatTensorProto('', a.v.data, a.v.dims)
            : int64TensorProto('', a.v.data, a.v.dims),
      };
    default:
      throw new Error(`${what}: attribute of type ${a.type} cannot be re-emitted`);
  }
}

export function emitImportedGraph(
  g: OnnxGraphBuilder,
  imported: ImportedGraph,
  opts: EmitBackboneOptions,
): EmittedBackbone {
  const P = opts.prefix ?? '';
  const names = new Map<string, string>([[imported.inputName, opts.input]]);
  const statistics: Record<string, string> = {};
  const constant = (name: string): string => {
    const cached = names.get(name);
    if (cached) return cached;
    const v = imported.constants.get(name) as HostValue;
    const graphName = `const:${name}`;
    if (!g.has(graphName)) {
      if (v.dtype === DT.FLOAT) g.initializer(graphName, v.data, v.shape);
      else g.int64Initializer(graphName, v.data, v.shape);
    }
    names.set(name, graphName);
    return graphName;
  };
  const value = (name: string): string => {
    if (name === '') return '';
    const known = names.get(name);
    if (known) return known;
    if (name in imported.paramShapes)
      return opts.weight(name, imported.paramShapes[name] as number[]);
    if (imported.constants.has(name)) return constant(name);
    throw new Error(`${imported.source}: value "${name}" is not available to the engine`);
  };
  for (const n of imported.nodes) {
    const what = `${imported.source}: node "${n.label}" (${n.opType})`;
    if (!OP_RULES[n.opType] && n.opType !== 'Dropout')
      throw new Error(
        `${imported.source}: no gradient rule for op "${n.opType}" (node "${n.label}"); the training engine cannot compile this model — run it with --engine tfjs (ops with rules: ${DIFFERENTIABLE_OPS.join(', ')})`,
      );
    const attrs: Record<string, OnnxAttr> = {};
    for (const [k, a] of n.attrs) attrs[k] = toOnnxAttr(a, what);
    let inputs = n.inputs.map(value);
    let opType = n.opType;
    const outs = n.outputs.map((o) => (o === '' ? '' : `${P}${o}`));
    const axesToInput = (key: string) => {
      const a = attrs[key];
      delete attrs[key];
      return a?.type === 'ints' ? g.ints(a.value, 'axes') : '';
    };
    if (imported.opset < 13 && ['Squeeze', 'Unsqueeze', 'ReduceSum'].includes(opType)) {
      const axes = axesToInput('axes');
      inputs = axes ? [inputs[0] as string, axes] : [inputs[0] as string];
    }
    if (imported.opset < 11 && opType === 'Clip') {
      const bound = (k: string, v: number) => {
        const a = attrs[k];
        delete attrs[k];
        return g.scalar(a?.type === 'float' ? a.value : v, 'clip');
      };
      inputs = [inputs[0] as string, bound('min', -3.4e38), bound('max', 3.4e38)];
    }
    if (opType === 'Dropout') {
      // Inference semantics (the imported model's): dropout is the identity.
      opType = 'Identity';
      inputs = [inputs[0] as string];
      for (const k of Object.keys(attrs)) delete attrs[k];
    }
    if (opType === 'BatchNormalization' && opts.training) {
      const [x, scale, bias, mean, variance] = inputs as [string, string, string, string, string];
      const onnxMomentum = attrs.momentum?.type === 'float' ? attrs.momentum.value : 0.9;
      const bn = batchNormTraining(
        g,
        x,
        { scale, bias, runningMean: mean, runningVar: variance },
        {
          epsilon: attrs.epsilon?.type === 'float' ? attrs.epsilon.value : 1e-5,
          // ONNX's momentum weighs the old running value: PyTorch's is 1 − it.
          momentum: 1 - onnxMomentum,
        },
      );
      const rawMean = n.inputs[3] as string;
      const rawVar = n.inputs[4] as string;
      if (rawMean in imported.paramShapes) statistics[rawMean] = bn.runningMean;
      if (rawVar in imported.paramShapes) statistics[rawVar] = bn.runningVar;
      g.op('Identity', [bn.y], {}, outs[0] as string);
      names.set(n.outputs[0] as string, outs[0] as string);
      continue;
    }
    g.node(opType, inputs, outs.slice(0, 1), attrs, `${P}${n.label}`);
    names.set(n.outputs[0] as string, outs[0] as string);
  }
  const features = names.get(imported.featuresName);
  if (!features)
    throw new Error(`${imported.source}: features "${imported.featuresName}" not emitted`);
  const dims = g.dims(features);
  return {
    features,
    featureShape: dims ? (dims.slice(1) as number[]) : [],
    taps: {},
    statistics,
  };
}
