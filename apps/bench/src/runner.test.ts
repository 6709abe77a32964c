import * as tf from '@tensorflow/tfjs-core';
import { createRng, disposeParams, initBackend } from '@transferlab/core';
import type { Dataset, TaskPair } from '@transferlab/datasets';
import {
  type AnyTransferMethod,
  fineTune,
  type LoopConfig,
  scratch,
  TRANSFER_METHOD_SPECIFICATION_VERSION,
  type TransferMethod,
} from '@transferlab/methods';
import { createBackbone, mlpSpec } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { datasetBatch, pretrainSource, runTrial } from './runner.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

function dataset(n: number, classes: number, seed: number): Dataset {
  const rng = createRng(seed);
  const y = Int32Array.from({ length: n }, () => rng.int(classes));
  const x = Float32Array.from(
    { length: n * 6 },
    (_, i) => rng.normal() + (i % 6 === (y[Math.floor(i / 6)] as number) ? 2 : 0),
  );
  return { name: `toy-${seed}`, x, y, shape: [6], numClasses: classes };
}

const task: TaskPair = {
  id: 'toy',
  description: 'toy',
  source: { train: dataset(60, 4, 1) },
  target: { train: dataset(30, 3, 2), val: dataset(15, 3, 3), test: dataset(15, 3, 4) },
};
const backbone = createBackbone(mlpSpec([6], [8]));
const pretrainConfig = {
  epochs: 1,
  batchSize: 16,
  optimizer: 'adam' as const,
  lr: 1e-2,
  momentum: 0.9,
  weightDecay: 0,
  schedule: 'constant' as const,
  maxExamples: 60,
};

/** `method` with every hook answering a promise, resolved on a later macrotask. */
function deferred(method: AnyTransferMethod): AnyTransferMethod {
  const later = <T>(v: T) => new Promise<T>((resolve) => setTimeout(() => resolve(v), 0));
  return {
    ...method,
    init: async (ctx) => later(await method.init(ctx)),
    trainStep: async (state, input) => later(await method.trainStep(state, input)),
    predictParams: async (state) => later(await method.predictParams(state)),
    dispose: async (state) => later(await method.dispose(state)),
  };
}

describe('runTrial', () => {
  it('refuses a method of another contract version, naming it and the expected version', async () => {
    const old = { ...scratch, specificationVersion: 'v1' } as unknown as AnyTransferMethod;
    await expect(
      runTrial({ task, method: old, config: scratch.validate({ epochs: 1 }), backbone, seed: 0 }),
    ).rejects.toThrow(
      /method "scratch" implements TransferMethod specification "v1", but @transferlab\/methods expects "v2"/,
    );
  });

  it('awaits asynchronous hooks: the same numbers as the synchronous method, nothing leaks', async () => {
    const pre = await pretrainSource({
      backbone,
      source: task.source.train,
      seed: 0,
      config: pretrainConfig,
    });
    const config = fineTune.validate({ epochs: 2, batchSize: 8 });
    const run = (method: AnyTransferMethod) =>
      runTrial({ task, method, config, backbone, seed: 3, pretrained: pre.params });
    const before = tf.memory().numTensors;
    const sync = await run(fineTune);
    expect(tf.memory().numTensors).toBe(before);
    expect(await run(deferred(fineTune))).toEqual(sync);
    expect(tf.memory().numTensors).toBe(before);
    disposeParams(pre.params);
    disposeParams(pre.sourceHead);
  });

  it('a method that reads only the typed arrays costs no tensor per step', async () => {
    // Class frequencies counted from yData: no tensor in init or trainStep.
    const counts: TransferMethod<LoopConfig, { counts: number[] }> = {
      specificationVersion: TRANSFER_METHOD_SPECIFICATION_VERSION,
      id: 'label-counts',
      title: 'label counts',
      description: 'predicts the most frequent training label',
      defaults: { epochs: 2, batchSize: 8 },
      validate: (o) => ({ epochs: 2, batchSize: 8, ...o }),
      needs: { pretrainedBackbone: false, sourceBatches: false },
      init: (ctx) => ({ counts: new Array<number>(ctx.numClasses).fill(1) }),
      trainStep(state, { target }) {
        expect(target.xData).toHaveLength(target.n * 6);
        expect(target.shape).toEqual([6]);
        const next = [...state.counts];
        for (const label of target.yData) next[label] = (next[label] as number) + 1;
        live.push(tf.memory().numTensors);
        return { state: { counts: next }, loss: 1 };
      },
      predictParams: () => ({}),
      predict: (state, _p, x) =>
        tf.tile(tf.log(tf.tensor2d([state.counts], [1, state.counts.length])), [x.shape[0], 1]),
      dispose() {},
    };
    const live: number[] = [];
    const before = tf.memory().numTensors;
    const out = await runTrial({
      task,
      method: counts,
      config: { epochs: 2, batchSize: 8 },
      backbone,
      seed: 0,
    });
    expect(live).toHaveLength(8);
    expect(new Set(live)).toEqual(new Set([before]));
    expect(out.metrics.target_test_acc).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('datasetBatch', () => {
  it('gathers the rows toTensors would, as typed arrays', () => {
    const ds = task.target.train;
    const b = datasetBatch(ds, [4, 0, 7]);
    expect(b.n).toBe(3);
    expect(Array.from(b.yData)).toEqual([ds.y[4], ds.y[0], ds.y[7]]);
    expect(Array.from(b.xData.subarray(6, 12))).toEqual(Array.from(ds.x.subarray(0, 6)));
    expect(b.xData.buffer).not.toBe(ds.x.buffer);
  });
});
