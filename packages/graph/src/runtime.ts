/**
 * onnxruntime-node, loaded on first use (importing this package never loads
 * the native addon), and small helpers to run a graph on typed arrays.
 *
 * Install note: onnxruntime-node's postinstall script downloads CUDA files
 * and fails offline; it is not needed for the CPU binary, which ships inside
 * the npm package. pnpm 10 skips dependency build scripts by default; with
 * npm, set ONNXRUNTIME_NODE_INSTALL=skip.
 */

/*
 * The parts of onnxruntime-node's API used in this workspace, typed here so
 * the published types do not require onnxruntime-node, an optional peer, to
 * be installed. `ort-types.test.ts` checks them against the real module.
 */
export type OrtTensorType = 'float32' | 'int64' | 'int32' | 'bool' | (string & {});
export interface OrtTensor {
  readonly type: OrtTensorType;
  readonly data: unknown;
  readonly dims: readonly number[];
  dispose(): void;
}
export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  run(
    feeds: Record<string, OrtTensor>,
    fetches: readonly string[],
  ): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
export interface OrtSessionOptions {
  intraOpNumThreads?: number;
  interOpNumThreads?: number;
  executionMode?: 'sequential' | 'parallel';
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
}
export interface OrtModule {
  readonly InferenceSession: {
    create(bytes: Uint8Array, options?: OrtSessionOptions): Promise<OrtSession>;
  };
  readonly Tensor: new (
    type: OrtTensorType,
    data: Float32Array | BigInt64Array | Int32Array | Uint8Array,
    dims: readonly number[],
  ) => OrtTensor;
}

let ortPromise: Promise<OrtModule> | undefined;

/** Load onnxruntime-node once, with an error that says what to do when it is missing. */
export function loadOnnxRuntime(): Promise<OrtModule> {
  ortPromise ??= (import('onnxruntime-node') as Promise<unknown>).then(
    // CommonJS module: under Node's ESM loader its exports arrive as `default`.
    (m) => (m as { default?: OrtModule }).default ?? (m as OrtModule),
    (err: Error) => {
      ortPromise = undefined;
      throw new Error(
        `onnxruntime-node could not be loaded (${err.message}); it is an optional peer of ` +
          '@transferlab/graph and @transferlab/models, needed by the onnxruntime engine: ' +
          'npm install onnxruntime-node (ONNXRUNTIME_NODE_INSTALL=skip avoids its CUDA download offline), ' +
          'or train on the tfjs engine',
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
): Promise<OrtSession> {
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
  session: OrtSession,
  feeds: Readonly<Record<string, HostTensor>>,
  outputs?: readonly string[],
): Promise<Record<string, HostTensor>> {
  const ort = await loadOnnxRuntime();
  const ortFeeds: Record<string, OrtTensor> = {};
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
