import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng, disposeParams, initBackend } from '@transferlab/core';
import { createBackboneRegistry, exportBackboneToOnnx } from '@transferlab/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { onnxCheck } from './onnx-check.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('onnx-check', () => {
  it('reports a tiny diff, the operators, the parameter count and the taps for an exported CNN', async () => {
    const backbone = createBackboneRegistry().get('cnn').create([28, 28, 1]);
    const params = backbone.init(createRng(0));
    const file = join(mkdtempSync(join(tmpdir(), 'tl-onnx-')), 'cnn.onnx');
    writeFileSync(file, exportBackboneToOnnx(backbone, params));
    disposeParams(params);
    const report = await onnxCheck(file, { backend: 'wasm' });
    expect(report.maxAbsDiff).toBeLessThan(1e-4);
    expect(report.operators.Conv).toBe(2);
    expect(report.operators.MaxPool).toBe(2);
    expect(report.operators.Gemm).toBe(1);
    // conv1 3·3·1·16+16, conv2 3·3·16·32+32, fc 7·7·32·128+128
    expect(report.parameterCount).toBe(160 + 4640 + 200_832);
    expect(report.taps.length).toBeGreaterThan(0);
  });

  it('a truncated file is refused naming the file', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tl-onnx-')), 'cut.onnx');
    writeFileSync(file, Buffer.from([0x08, 0x07, 0x12, 0x40, 0x01]));
    await expect(onnxCheck(file)).rejects.toThrow(/cut\.onnx/);
    await expect(onnxCheck(join(tmpdir(), 'missing-xyz.onnx'))).rejects.toThrow(
      /cannot read ONNX file/,
    );
  });
});
