/**
 * onnxruntime-node, loaded on first use (importing this package never loads
 * the native addon), and small helpers to run a graph on typed arrays.
 *
 * Install note: onnxruntime-node's postinstall script downloads CUDA files
 * and fails offline; it is not needed for the CPU binary, which ships inside
 * the npm package. pnpm 10 skips dependency build scripts by default; with
 * npm, set ONNXRUNTIME_NODE_INSTALL=skip.
 */
import type * as Ort from 'onnxruntime-node';

export type OrtModule = typeof Ort;

let ortPromise: Promise<OrtModule> | undefined;

/** Load onnxruntime-node once, with an error that says what to do when it is missing. */
export function loadOnnxRuntime(): Promise<OrtModule> {
  ortPromise ??= import('onnxruntime-node').then(
    // CommonJS module: under Node's ESM loader its exports arrive as `default`.
    (m) => (m as unknown as { default?: OrtModule }).default ?? m,
    (err: Error) => {
      ortPromise = undefined;
      throw new Error(
        `onnxruntime-node could not be loaded (${err.message}). Install it ` +
          '(ONNXRUNTIME_NODE_INSTALL=skip avoids its CUDA download offline).',
      );
    },
  );
  return ortPromise;
}

/** A value fed to or read from a graph: row-major data and dims. */
export interface HostTensor {
  data: Float32Array | BigInt64Array | Int32Array | Uint8Array;
  dims: readonly number[];
}

export interface SessionOptions {
  /** Threads for one operator (onnxruntime's intra-op pool). Default 1: on two cores, two threads land run to run at either speed. */
  intraOpNumThreads?: number;
}

let liveSessions = 0;

/** Sessions made by `createSession` and not yet released: a leak test's measure. */
export function liveSessionCount(): number {
  return liveSessions;
}

/**
 * Create an onnxruntime session for serialized model bytes, sequential, all
 * graph optimizations. Release it with `session.release()` (counted by
 * `liveSessionCount`).
 */
export async function createSession(
  bytes: Uint8Array,
  opts: SessionOptions = {},
): Promise<Ort.InferenceSession> {
  const ort = await loadOnnxRuntime();
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: opts.intraOpNumThreads ?? 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  liveSessions++;
  const release = session.release.bind(session);
  let released = false;
  session.release = async () => {
    if (released) return;
    released = true;
    liveSessions--;
    await release();
  };
  return session;
}

function typeName(data: HostTensor['data']): 'float32' | 'int64' | 'int32' | 'bool' {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  return 'bool';
}

/** Run a session once on host tensors; returns the requested (or all) outputs as host tensors. */
export async function runSession(
  session: Ort.InferenceSession,
  feeds: Readonly<Record<string, HostTensor>>,
  outputs?: readonly string[],
): Promise<Record<string, HostTensor>> {
  const ort = await loadOnnxRuntime();
  const ortFeeds: Record<string, Ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds))
    ortFeeds[k] = new ort.Tensor(typeName(v.data), v.data, [...v.dims]);
  const result = outputs ? await session.run(ortFeeds, [...outputs]) : await session.run(ortFeeds);
  const out: Record<string, HostTensor> = {};
  for (const [k, t] of Object.entries(result)) {
    out[k] = { data: t.data as HostTensor['data'], dims: [...t.dims] };
    t.dispose?.();
  }
  return out;
}

/** Build, run once and release: for tests and one-off evaluations. */
export async function runGraphOnce(
  bytes: Uint8Array,
  feeds: Readonly<Record<string, HostTensor>>,
  opts: SessionOptions = {},
): Promise<Record<string, HostTensor>> {
  const session = await createSession(bytes, opts);
  try {
    return await runSession(session, feeds);
  } finally {
    await session.release();
  }
}
