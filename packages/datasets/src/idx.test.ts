import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { idxToDataset, isGzip, parseIdx } from './idx.js';

/** Hand-assembled IDX bytes: magic 00 00 <type> <ndims>, big-endian dims, payload. */
function idxBytes(dims: number[], data: number[], type = 0x08): Uint8Array {
  const header = [0, 0, type, dims.length];
  for (const d of dims)
    header.push((d >>> 24) & 0xff, (d >>> 16) & 0xff, (d >>> 8) & 0xff, d & 0xff);
  return Uint8Array.from([...header, ...data]);
}

// Two 2×3 images and their labels.
const IMAGE_BYTES = [0, 51, 102, 153, 204, 255, 255, 0, 1, 2, 3, 128];
const images = idxBytes([2, 2, 3], IMAGE_BYTES);
const labels = idxBytes([2], [7, 3]);

describe('parseIdx', () => {
  it('parses a raw ubyte IDX file: header bytes and payload', () => {
    expect(Array.from(images.subarray(0, 16))).toEqual([
      0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3,
    ]);
    const parsed = parseIdx(images, 'imgs.idx');
    expect(parsed.dims).toEqual([2, 2, 3]);
    expect(Array.from(parsed.data)).toEqual(IMAGE_BYTES);
  });

  it('reads dimensions above 255 big-endian', () => {
    const big = idxBytes([1, 300], new Array(300).fill(9));
    const parsed = parseIdx(big, 'big.idx');
    expect(parsed.dims).toEqual([1, 300]);
    expect(parsed.data.length).toBe(300);
    expect(parsed.data[299]).toBe(9);
  });

  it('inflates gzip input detected by its 1f 8b magic', () => {
    const gz = gzipSync(images);
    expect(isGzip(gz)).toBe(true);
    expect(isGzip(images)).toBe(false);
    const parsed = parseIdx(gz, 'imgs.idx.gz');
    expect(parsed.dims).toEqual([2, 2, 3]);
    expect(Array.from(parsed.data)).toEqual(IMAGE_BYTES);
  });

  it('rejects a bad magic number, naming the file and the bytes', () => {
    const bad = images.slice();
    bad[0] = 0x12;
    expect(() => parseIdx(bad, '/data/bad-magic.idx')).toThrow(
      '/data/bad-magic.idx: bad IDX magic number 0x12 0x00 0x08 0x03',
    );
  });

  it('rejects a non-ubyte type code', () => {
    expect(() => parseIdx(idxBytes([1], [0, 0, 0, 0], 0x0d), 'f32.idx')).toThrow(
      'f32.idx: unsupported IDX type code 0x0d (float32); only 0x08 (unsigned byte) is supported',
    );
    expect(() => parseIdx(idxBytes([1], [0], 0x42), 'x.idx')).toThrow(
      'unsupported IDX type code 0x42 (unknown)',
    );
  });

  it('rejects files shorter than the magic number or header', () => {
    expect(() => parseIdx(Uint8Array.from([0, 0]), 'tiny.idx')).toThrow(
      'tiny.idx: not an IDX file: only 2 bytes',
    );
    expect(() => parseIdx(images.subarray(0, 10), 'hdr.idx')).toThrow(
      'hdr.idx: truncated IDX header: 3 dimensions need 16 header bytes, file has 10',
    );
    expect(() => parseIdx(Uint8Array.from([0, 0, 8, 0]), 'zero.idx')).toThrow(
      'zero.idx: IDX header declares 0 dimensions',
    );
  });

  it('rejects truncated data and trailing bytes', () => {
    expect(() => parseIdx(images.subarray(0, images.length - 5), '/tmp/trunc.idx')).toThrow(
      '/tmp/trunc.idx: truncated IDX data: dimensions [2, 2, 3] need 12 bytes after the header, found 7',
    );
    const long = Uint8Array.from([...images, 1, 2]);
    expect(() => parseIdx(long, 'long.idx')).toThrow(
      'long.idx: IDX size mismatch: dimensions [2, 2, 3] need 12 bytes after the header, found 14 (2 extra)',
    );
  });

  it('rejects truncated and corrupt gzip streams', () => {
    const gz = gzipSync(images);
    expect(() => parseIdx(gz.subarray(0, gz.length - 8), '/d/cut.gz')).toThrow(
      /^\/d\/cut\.gz: corrupt gzip data/,
    );
    const junk = Uint8Array.from([0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(() => parseIdx(junk, '/d/junk.gz')).toThrow(/^\/d\/junk\.gz: corrupt gzip data/);
  });
});

describe('idxToDataset', () => {
  const opts = {
    name: 'tiny',
    numClasses: 10,
    classNames: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'],
  };

  it('scales bytes to [0, 1] and keeps labels', () => {
    const ds = idxToDataset(parseIdx(images, 'i'), 'i', parseIdx(labels, 'l'), 'l', opts);
    expect(ds.shape).toEqual([2, 3, 1]);
    expect(ds.numClasses).toBe(10);
    expect(Array.from(ds.y)).toEqual([7, 3]);
    expect(ds.x.length).toBe(12);
    expect(ds.x[0]).toBe(0);
    expect(ds.x[1]).toBe(Math.fround(51 / 255));
    expect(ds.x[1]).toBeCloseTo(0.2, 7);
    expect(ds.x[5]).toBe(1);
    expect(ds.x[6]).toBe(1);
    expect(ds.x[11]).toBe(Math.fround(128 / 255));
    expect(ds.classNames?.[7]).toBe('h');
  });

  it('rejects a count mismatch naming both files', () => {
    const three = parseIdx(idxBytes([3], [1, 2, 3]), '/x/labels.idx');
    expect(() =>
      idxToDataset(
        parseIdx(images, '/x/images.idx'),
        '/x/images.idx',
        three,
        '/x/labels.idx',
        opts,
      ),
    ).toThrow('IDX size mismatch: /x/images.idx holds 2 images but /x/labels.idx holds 3 labels');
  });

  it('rejects wrong ranks and out-of-range labels', () => {
    const l = parseIdx(labels, 'l');
    expect(() => idxToDataset(l, '/x/i.idx', l, 'l', opts)).toThrow(
      '/x/i.idx: expected a 3-dimensional IDX image file',
    );
    const i = parseIdx(images, 'i');
    expect(() => idxToDataset(i, 'i', i, '/x/l.idx', opts)).toThrow(
      '/x/l.idx: expected a 1-dimensional IDX label file',
    );
    const badLabels = parseIdx(idxBytes([2], [1, 12]), '/x/l.idx');
    expect(() => idxToDataset(i, 'i', badLabels, '/x/l.idx', opts)).toThrow(
      '/x/l.idx: label #1 is 12, outside 0..9',
    );
  });
});
