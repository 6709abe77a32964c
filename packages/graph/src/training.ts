/**
 * The training engine's step: a forward graph with a scalar loss, its
 * gradient graph (autodiff) and the optimizer's update, compiled into one
 * ONNX model and run by one onnxruntime session per step. Parameters and
 * optimizer slots live in JS memory (typed arrays) between steps: each step
 * feeds them in and takes the updated values out.
 */

import { addGradients } from './autodiff.js';
import type { OnnxGraphBuilder } from './builder.js';
import {
  adamCorrections,
  appendOptimizer,
  type GraphOptimizer,
  OPTIMIZER_INPUTS,
} from './optimizers.js';
import { createSession, type HostTensor, type OrtSession, runSession } from './runtime.js';

export interface TrainingGraphSpec {
  /** Forward graph and loss; every parameter is a float graph input of its own name. */
  graph: OnnxGraphBuilder;
  /** The scalar loss value. */
  loss: string;
  /** Initial values of every parameter input (copied). */
  params: Readonly<Record<string, HostTensor>>;
  /** Parameters the optimizer updates, with their learning-rate multipliers. */
  trainable: readonly { name: string; lrScale: number }[];
  /** Values the step writes back into parameters (normalisation running statistics): param → graph value. */
  carried?: Readonly<Record<string, string>>;
  optimizer: GraphOptimizer;
  /** More graph values to return from every step. */
  outputs?: readonly string[];
  /** onnxruntime intra-op threads. Default 1 (see `SessionOptions`). */
  intraOpNumThreads?: number;
  opset?: number;
}

export interface StepOutput {
  loss: number;
  outputs: Record<string, HostTensor>;
}

const nextName = (name: string) => `${name}:next`;

/** Build the whole training step graph in `spec.graph`; returns the model bytes and the slot inputs. */
export function buildTrainingGraph(spec: TrainingGraphSpec): {
  bytes: Uint8Array;
  slotInputs: string[];
} {
  const g = spec.graph;
  const lossDims = g.dims(spec.loss);
  if (lossDims?.length !== 0)
    throw new Error(
      `training graph: the loss "${spec.loss}" must be a scalar, has dims [${lossDims}]`,
    );
  const inputs = new Set(g.inputNames());
  for (const name of Object.keys(spec.params))
    if (!inputs.has(name))
      throw new Error(`training graph: parameter "${name}" is not a graph input`);
  for (const t of spec.trainable)
    if (!(t.name in spec.params))
      throw new Error(
        `training graph: trainable "${t.name}" is not a parameter (have: ${Object.keys(spec.params).join(', ')})`,
      );
  const trained = spec.trainable.filter((t) => t.lrScale > 0);
  const grads = addGradients(
    g,
    spec.loss,
    trained.map((t) => t.name),
  );
  const { slotInputs } = appendOptimizer(
    g,
    trained.map((t) => ({ name: t.name, grad: grads[t.name] as string, lrScale: t.lrScale })),
    spec.optimizer,
  );
  for (const [param, value] of Object.entries(spec.carried ?? {})) {
    g.op('Identity', [value], {}, nextName(param));
    g.output(nextName(param));
  }
  g.output(spec.loss);
  for (const o of spec.outputs ?? []) g.output(o);
  return { bytes: g.toBytes({ opset: spec.opset ?? 17 }), slotInputs };
}

export class TrainingSession {
  private disposed = false;
  private t = 0;

  private constructor(
    private readonly session: OrtSession,
    private readonly spec: TrainingGraphSpec,
    private readonly values: Record<string, HostTensor>,
    private readonly slots: Record<string, HostTensor>,
    private readonly updated: readonly string[],
  ) {}

  /** Compile the step of `spec` and start its onnxruntime session. */
  static async create(spec: TrainingGraphSpec): Promise<TrainingSession> {
    const { bytes, slotInputs } = buildTrainingGraph(spec);
    const session = await createSession(bytes, {
      intraOpNumThreads: spec.intraOpNumThreads ?? 1,
    });
    const values: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(spec.params))
      values[k] = { data: Float32Array.from(v.data as Float32Array), dims: [...v.dims] };
    const slots: Record<string, HostTensor> = {};
    for (const s of slotInputs) {
      const param = s.slice(s.indexOf(':') + 1);
      const p = values[param] as HostTensor;
      slots[s] = { data: new Float32Array(p.data.length), dims: [...p.dims] };
    }
    const updated = [
      ...spec.trainable.filter((t) => t.lrScale > 0).map((t) => t.name),
      ...Object.keys(spec.carried ?? {}),
    ];
    return new TrainingSession(session, spec, values, slots, updated);
  }

  /** Updates applied so far. */
  get steps(): number {
    return this.t;
  }

  /**
   * One step on `feeds` (the data inputs: images, labels, …) at learning rate
   * `lr` (schedule applied). Returns the loss before the update and the
   * requested outputs. A non-finite loss still updates: the caller decides.
   */
  async step(feeds: Readonly<Record<string, HostTensor>>, lr: number): Promise<StepOutput> {
    if (this.disposed) throw new Error('TrainingSession: used after dispose()');
    const all: Record<string, HostTensor> = { ...feeds, ...this.values, ...this.slots };
    all[OPTIMIZER_INPUTS.lr] = { data: Float32Array.of(lr), dims: [] };
    if (this.spec.optimizer.kind === 'adam') {
      const { c1, c2 } = adamCorrections(this.spec.optimizer, this.t + 1);
      all[OPTIMIZER_INPUTS.c1] = { data: Float32Array.of(c1), dims: [] };
      all[OPTIMIZER_INPUTS.c2] = { data: Float32Array.of(c2), dims: [] };
    }
    const out = await runSession(this.session, all);
    for (const name of this.updated) this.values[name] = out[nextName(name)] as HostTensor;
    for (const s of Object.keys(this.slots)) this.slots[s] = out[nextName(s)] as HostTensor;
    this.t++;
    const loss = (out[this.spec.loss] as HostTensor).data[0] as number;
    const outputs: Record<string, HostTensor> = {};
    for (const o of this.spec.outputs ?? []) outputs[o] = out[o] as HostTensor;
    return { loss, outputs };
  }

  /** The current parameter values (live arrays: copy what you keep across steps). */
  params(): Readonly<Record<string, HostTensor>> {
    return this.values;
  }

  /** The optimizer slots (`m:<param>`, `v:<param>`), live. */
  optimizerSlots(): Readonly<Record<string, HostTensor>> {
    return this.slots;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.session.release();
  }
}
