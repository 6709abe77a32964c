import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@transferlab/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { batchFromTensors, createBatch, disposeBatch } from './batch.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

const xData = Float32Array.from({ length: 12 }, (_, i) => i / 2);
const yData = Int32Array.from([0, 2, 1]);

describe('createBatch', () => {
  it('makes no tensor until x or y is read, then one each, freed by disposeBatch', () => {
    const before = tf.memory().numTensors;
    const b = createBatch(xData, yData, [2, 2]);
    expect([b.n, b.shape, b.xData, b.yData]).toEqual([3, [2, 2], xData, yData]);
    expect(tf.memory().numTensors).toBe(before);
    expect(b.y.dtype).toBe('int32');
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(b.x.shape).toEqual([3, 2, 2]);
    expect(b.x).toBe(b.x);
    expect(Array.from(b.x.dataSync())).toEqual(Array.from(xData));
    expect(Array.from(b.y.dataSync())).toEqual([0, 2, 1]);
    expect(tf.memory().numTensors).toBe(before + 2);
    disposeBatch(b);
    expect(tf.memory().numTensors).toBe(before);
    disposeBatch(b);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a tensor first read inside a tf.tidy outlives it (the batch owns it)', () => {
    const before = tf.memory().numTensors;
    const b = createBatch(xData, yData, [4]);
    const sum = tf.tidy(() => tf.sum(b.x).dataSync()[0] as number);
    expect(sum).toBe(33);
    expect(b.x.isDisposed).toBe(false);
    expect(tf.memory().numTensors).toBe(before + 1);
    disposeBatch(b);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses inputs that do not fit the labels and the shape', () => {
    expect(() => createBatch(xData, yData, [5])).toThrow(
      'createBatch: 3 labels of examples of shape [5] need 15 input values, got 12',
    );
  });
});

describe('batchFromTensors', () => {
  it('reads the typed arrays from the tensors; disposeBatch leaves the caller’s tensors alone', () => {
    const x = tf.tensor(xData, [3, 4]);
    const y = tf.tensor1d(yData, 'int32');
    const b = batchFromTensors(x, y);
    expect([b.n, b.shape]).toEqual([3, [4]]);
    expect(b.x).toBe(x);
    expect(b.y).toBe(y);
    expect(b.xData).toEqual(xData);
    expect(b.yData).toEqual(yData);
    disposeBatch(b);
    expect(x.isDisposed || y.isDisposed).toBe(false);
    const short = tf.tensor1d([1, 2], 'int32');
    expect(() => batchFromTensors(x, short)).toThrow(
      /must hold the same number of examples, got \[3,4\] and \[2\]/,
    );
    tf.dispose([x, y, short]);
  });
});
