import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTempDir, removeDir } from '../images/test-fixtures.js';
import { matVariable, parseMat } from './mat.js';
import { matFile } from './test-fixtures.js';

function hasScipy(): boolean {
  try {
    execFileSync('python3', ['-c', 'import scipy.io'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('parseMat (MATLAB Level 5)', () => {
  it('reads compressed variables stored in the smallest integer type, as MATLAB writes them', () => {
    const labels = [77, 77, 1, 102, 5];
    const tstid = [8189, 300, 1];
    const file = parseMat(matFile({ labels, tstid }), 'x.mat');
    const l = matVariable(file, 'labels', 'x.mat');
    expect(l.class).toBe('double');
    expect(l.dims).toEqual([1, 5]);
    expect(Array.from(l.data)).toEqual(labels);
    expect(Array.from(matVariable(file, 'tstid', 'x.mat').data)).toEqual(tstid);
  });

  it('reads uncompressed, big-endian and double-stored matrices (column-major)', () => {
    const data = [1.5, -2, 3, 4, 5.25, 6]; // 2×3, column-major
    for (const opts of [
      { compress: false },
      { bigEndian: true },
      { bigEndian: true, compress: false, smallestType: false },
    ]) {
      const file = parseMat(matFile({ m: { dims: [2, 3], data } }, opts), 'm.mat');
      const m = matVariable(file, 'm', 'm.mat');
      expect(m.dims).toEqual([2, 3]);
      expect(Array.from(m.data)).toEqual(data);
    }
  });

  it('says what is wrong: v7.3, not a MAT-file, truncated, a missing variable', () => {
    const v73 = Buffer.alloc(512);
    v73.write('MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00', 0, 'latin1');
    expect(() => parseMat(v73, 'new.mat')).toThrow('new.mat is a MATLAB v7.3 file (HDF5)');
    expect(() => parseMat(Buffer.from('hello'), 'h.mat')).toThrow(
      'h.mat is not a MATLAB 5.0 MAT-file',
    );
    const whole = matFile({ labels: [1, 2, 3] }, { compress: false });
    expect(() => parseMat(whole.subarray(0, whole.length - 12), 'cut.mat')).toThrow(
      /MAT-file cut\.mat: truncated/,
    );
    const compressed = matFile({ labels: [1, 2, 3] });
    const broken = Buffer.from(compressed);
    broken.fill(0xff, 140, 150);
    expect(() => parseMat(broken, 'bad.mat')).toThrow(
      /bad\.mat: a compressed variable .* is corrupt/,
    );
    const file = parseMat(compressed, 'l.mat');
    expect(() => matVariable(file, 'trnid', 'l.mat')).toThrow(
      'MAT-file l.mat has no numeric variable "trnid" (it holds: labels)',
    );
  });

  it.skipIf(!hasScipy())(
    'agrees with scipy.io both ways (savemat → parseMat, matFile → loadmat)',
    async () => {
      const dir = await makeTempDir('transferlab-mat-');
      try {
        const fromScipy = join(dir, 'scipy.mat');
        execFileSync('python3', [
          '-c',
          `import numpy as np, scipy.io as sio
sio.savemat(${JSON.stringify(fromScipy)}, {'labels': np.array([[3, 1, 102, 7]], dtype=np.float64),
  'tstid': np.array([[8189, 2, 40]], dtype=np.uint16), 'm': np.array([[1.5, 2], [3, 4]])}, do_compression=True)`,
        ]);
        const parsed = parseMat(await readFile(fromScipy), fromScipy);
        expect(Array.from(matVariable(parsed, 'labels', fromScipy).data)).toEqual([3, 1, 102, 7]);
        expect(matVariable(parsed, 'tstid', fromScipy).class).toBe('uint16');
        expect(Array.from(matVariable(parsed, 'tstid', fromScipy).data)).toEqual([8189, 2, 40]);
        expect(Array.from(matVariable(parsed, 'm', fromScipy).data)).toEqual([1.5, 3, 2, 4]);

        const ours = join(dir, 'ours.mat');
        await writeFile(ours, matFile({ labels: [77, 1, 102], setid: [8189, 300] }));
        const json = execFileSync('python3', [
          '-c',
          `import json, scipy.io as sio
d = sio.loadmat(${JSON.stringify(ours)})
print(json.dumps({k: d[k].tolist() for k in ('labels', 'setid')}))`,
        ]).toString();
        expect(JSON.parse(json)).toEqual({ labels: [[77, 1, 102]], setid: [[8189, 300]] });
      } finally {
        await removeDir(dir);
      }
    },
  );
});
