// The tfjs union package registers every op's gradient (tfjs-core alone
// registers none) and the cpu backend; the wasm backend registers itself.
// Namespace imports, not bare `import 'x'`: declaration files keep bare
// imports, which would pull tfjs-layers' and tfjs-data's types into users' programs.
import * as tfjsUnion from '@tensorflow/tfjs';
import * as tfjsWasm from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import {
  registerWasmGradientKernels,
  useFastWasmConv2DBackpropInput,
} from './kernels/wasm-gradient-kernels.js';

void [tfjsUnion, tfjsWasm];

export const BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendInfo {
  name: BackendName;
  /** Why this backend: the option, the environment variable, or automatic choice. */
  reason: string;
  /** Backends tried before this one, with the reason each failed. */
  skipped: { name: BackendName; error: string }[];
}

export function parseBackendName(value: string, source: string): BackendName {
  if ((BACKENDS as readonly string[]).includes(value)) return value as BackendName;
  throw new Error(
    `Unknown backend "${value}" (from ${source}). Valid backends: ${BACKENDS.join(', ')}`,
  );
}

/** tfjs-node is optional: its install downloads libtensorflow, which fails offline. */
async function loadTensorflowBackend(): Promise<void> {
  // check-deps: @tensorflow/tfjs-node (an optional peer; a computed name so bundlers leave it alone)
  const moduleName = '@tensorflow/tfjs-node';
  try {
    await import(/* @vite-ignore */ moduleName);
  } catch (err) {
    throw new Error(
      `${moduleName} is not installed (${(err as Error).message}); it is an optional peer of ` +
        '@transferlab/core: npm install @tensorflow/tfjs-node (its install downloads libtensorflow)',
    );
  }
  if (!tf.findBackend('tensorflow')) {
    throw new Error(
      '@tensorflow/tfjs-node loaded but registered no "tensorflow" backend (a second copy of tfjs-core?)',
    );
  }
}

async function activate(name: BackendName): Promise<void> {
  if (name === 'tensorflow') await loadTensorflowBackend();
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`tf.setBackend("${name}") failed`);
  await tf.ready();
  if (name === 'wasm') {
    registerWasmGradientKernels();
    // wasm's own Conv2DBackpropInput is a plain loop ~9× slower than its
    // XNNPACK forward conv; the replacement is one XNNPACK conv (tested against cpu).
    useFastWasmConv2DBackpropInput(true);
  }
}

let current: BackendInfo | undefined;

/**
 * Choose and initialise the compute backend. Order of precedence: the
 * `backend` option, then `TRANSFERLAB_BACKEND`, then automatic: tensorflow
 * (tfjs-node) if installed and loadable, else wasm, else cpu. A backend named
 * explicitly must work, or this throws with the reason.
 */
export async function initBackend(opts: { backend?: string } = {}): Promise<BackendInfo> {
  const fromEnv = process.env.TRANSFERLAB_BACKEND;
  const requested = opts.backend
    ? parseBackendName(opts.backend, 'the backend option')
    : fromEnv
      ? parseBackendName(fromEnv, 'TRANSFERLAB_BACKEND')
      : undefined;
  if (requested) {
    if (current?.name === requested && tf.getBackend() === requested) return current;
    try {
      await activate(requested);
    } catch (err) {
      throw new Error(`Backend "${requested}" could not be initialised: ${(err as Error).message}`);
    }
    current = {
      name: requested,
      reason: opts.backend ? 'requested by option' : 'requested by TRANSFERLAB_BACKEND',
      skipped: [],
    };
    return current;
  }
  if (current && tf.getBackend() === current.name) return current;
  const skipped: BackendInfo['skipped'] = [];
  for (const name of BACKENDS) {
    try {
      await activate(name);
      current = { name, reason: 'automatic', skipped };
      return current;
    } catch (err) {
      skipped.push({ name, error: (err as Error).message.split('\n')[0] ?? String(err) });
    }
  }
  throw new Error(`No tfjs backend could be initialised: ${JSON.stringify(skipped)}`);
}

/** The active backend's name (after `initBackend`). */
export function activeBackend(): string {
  return tf.getBackend();
}
