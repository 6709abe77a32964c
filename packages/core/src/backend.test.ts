import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import { initBackend, parseBackendName } from './backend.js';

describe('initBackend', () => {
  afterEach(() => {
    delete process.env.TRANSFERLAB_BACKEND;
  });

  it('honours the option, then the environment variable', async () => {
    expect((await initBackend({ backend: 'cpu' })).name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    process.env.TRANSFERLAB_BACKEND = 'wasm';
    const info = await initBackend();
    expect(info.name).toBe('wasm');
    expect(info.reason).toMatch(/TRANSFERLAB_BACKEND/);
    expect(tf.getBackend()).toBe('wasm');
  });

  it('names the valid backends for an unknown one', () => {
    expect(() => parseBackendName('gpu', 'test')).toThrow(
      'Unknown backend "gpu" (from test). Valid backends: tensorflow, wasm, cpu',
    );
  });

  it('an explicitly requested backend that cannot load is an error, not a silent fallback', async () => {
    let tfjsNodeInstalled = true;
    try {
      await import(/* @vite-ignore */ ['@tensorflow', 'tfjs-node'].join('/'));
    } catch {
      tfjsNodeInstalled = false;
    }
    if (tfjsNodeInstalled) return; // nothing to check where it is installed
    await expect(initBackend({ backend: 'tensorflow' })).rejects.toThrow(
      /Backend "tensorflow" could not be initialised/,
    );
  });

  it('automatic choice skips tensorflow when tfjs-node is absent and picks wasm', async () => {
    await tf.setBackend('cpu');
    const info = await initBackend();
    expect(['tensorflow', 'wasm']).toContain(info.name);
    if (info.name === 'wasm') expect(info.skipped.map((s) => s.name)).toEqual(['tensorflow']);
  });
});
