// The local onnxruntime-node types (runtime.ts) accept the real module: a
// compile-time check, run by `pnpm typecheck`.
import type * as Ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { OrtModule, OrtSession } from './runtime.js';

type Real = typeof Ort;
const asLocal = (m: Real): OrtModule => m;
const session = (s: Ort.InferenceSession): OrtSession => s;

describe('local onnxruntime-node types', () => {
  it('are satisfied by onnxruntime-node', () => {
    expect(typeof asLocal).toBe('function');
    expect(typeof session).toBe('function');
  });
});
