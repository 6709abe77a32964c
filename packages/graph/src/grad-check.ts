/**
 * Gradient checks for graphs: the autodiff's gradients, run by onnxruntime,
 * against central finite differences of the same graph's loss. Used by the
 * per-op tests here and by the engine's tests elsewhere.
 */
import { addGradients } from './autodiff.js';
import { OnnxGraphBuilder } from './builder.js';
import { createSession, type HostTensor, runSession } from './runtime.js';

export interface GradCheckInput {
  dims: readonly number[];
  data: Float32Array;
  /** Differentiate with respect to this input (default true). */
  wrt?: boolean;
}

export interface GradCheckResult {
  loss: number;
  /** Analytic gradients (the autodiff's), by input name. */
  analytic: Record<string, Float32Array>;
  /** Finite-difference gradients at the checked coordinates (NaN elsewhere). */
  numeric: Record<string, Float32Array>;
  /** max |analytic − numeric| / max(1, max |numeric|) over the checked coordinates. */
  maxRelError: number;
}

/**
 * Build `build(g, inputs) → loss` (a scalar value), add its gradients with
 * respect to the float inputs marked `wrt`, and compare them with central
 * differences (step `eps`) at up to `coordinates` entries per input.
 */
export async function gradCheck(args: {
  inputs: Readonly<Record<string, GradCheckInput>>;
  /** Extra non-differentiated inputs (labels, int64 values). */
  constants?: Readonly<Record<string, HostTensor & { elemType: number }>>;
  build: (g: OnnxGraphBuilder) => string;
  eps?: number;
  coordinates?: number;
  opset?: number;
}): Promise<GradCheckResult> {
  const g = new OnnxGraphBuilder('grad-check');
  for (const [name, v] of Object.entries(args.inputs)) g.input(name, v.dims);
  for (const [name, v] of Object.entries(args.constants ?? {})) g.input(name, v.dims, v.elemType);
  const loss = args.build(g);
  const wrt = Object.entries(args.inputs)
    .filter(([, v]) => v.wrt !== false)
    .map(([k]) => k);
  const grads = addGradients(g, loss, wrt);
  g.output(loss, []);
  for (const w of wrt) g.output(grads[w] as string);
  const session = await createSession(g.toBytes({ opset: args.opset ?? 17 }));
  try {
    const feeds: Record<string, HostTensor> = {};
    for (const [name, v] of Object.entries(args.inputs))
      feeds[name] = { data: v.data.slice(), dims: v.dims };
    for (const [name, v] of Object.entries(args.constants ?? {})) feeds[name] = v;
    const run = async (f: Record<string, HostTensor>) => runSession(session, f);
    const base = await run(feeds);
    const analytic: Record<string, Float32Array> = {};
    for (const w of wrt) analytic[w] = base[grads[w] as string]?.data as Float32Array;
    const lossAt = async (f: Record<string, HostTensor>) =>
      ((await runSession(session, f, [loss]))[loss] as HostTensor).data[0] as number;
    const eps = args.eps ?? 1e-2;
    const numeric: Record<string, Float32Array> = {};
    let maxErr = 0;
    for (const w of wrt) {
      const x = feeds[w] as HostTensor;
      const data = x.data as Float32Array;
      const n = data.length;
      const count = Math.min(n, args.coordinates ?? 24);
      const num = new Float32Array(n).fill(Number.NaN);
      let scale = 1;
      const errs: number[] = [];
      for (let k = 0; k < count; k++) {
        const idx = count === n ? k : Math.floor((k * n) / count);
        const orig = data[idx] as number;
        data[idx] = orig + eps;
        const up = await lossAt(feeds);
        data[idx] = orig - eps;
        const down = await lossAt(feeds);
        data[idx] = orig;
        num[idx] = (up - down) / (2 * eps);
        scale = Math.max(scale, Math.abs(num[idx] as number));
        errs.push(Math.abs((analytic[w]?.[idx] as number) - (num[idx] as number)));
      }
      numeric[w] = num;
      maxErr = Math.max(maxErr, ...errs.map((e) => e / scale));
    }
    return {
      loss: (base[loss] as HostTensor).data[0] as number,
      analytic,
      numeric,
      maxRelError: maxErr,
    };
  } finally {
    await session.release();
  }
}

/** Deterministic pseudo-random floats in [−scale, scale) (a small LCG: tests need no seeded RNG package). */
export function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

/**
 * A scalar loss from any value: Σ v ⊙ w with fixed random weights w, so every
 * element of v reaches the loss with a different coefficient.
 */
export function projectToScalar(g: OnnxGraphBuilder, v: string, seed = 7): string {
  const dims = g.dims(v);
  if (!dims || dims.some((d) => typeof d !== 'number'))
    throw new Error(`projectToScalar: "${v}" needs a static shape`);
  const size = (dims as number[]).reduce((a, b) => a * b, 1);
  const w = g.initializer(g.fresh('proj'), randomFloats(size, seed), dims as number[]);
  return g.op('ReduceSum', [g.op('Mul', [v, w])], { keepdims: { type: 'int', value: 0 } });
}
