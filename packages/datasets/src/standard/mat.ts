import { inflateSync } from 'node:zlib';

// The part of MATLAB's Level 5 MAT-file format (what `save` writes by
// default, -v6 and -v7; v7 compresses each variable with zlib) that dataset
// label files need: real numeric arrays, any element type, either byte order.
// Cells, structs, strings, sparse and complex arrays are listed, not decoded.
// v7.3 files are HDF5 and are refused with a message saying so.

/** A real numeric variable; `data` is column-major (MATLAB's order). */
export interface MatArray {
  readonly name: string;
  /** MATLAB class: 'double', 'single', 'int8', …, 'uint64' (logical arrays: 'logical'). */
  readonly class: string;
  readonly dims: readonly number[];
  readonly data: Float64Array;
}

export interface MatFile {
  readonly arrays: ReadonlyMap<string, MatArray>;
  /** Variables of other kinds (cell, struct, char, sparse, complex), by name. */
  readonly other: readonly { readonly name: string; readonly class: string }[];
}

const MI = {
  INT8: 1,
  UINT8: 2,
  INT16: 3,
  UINT16: 4,
  INT32: 5,
  UINT32: 6,
  SINGLE: 7,
  DOUBLE: 9,
  INT64: 12,
  UINT64: 13,
  MATRIX: 14,
  COMPRESSED: 15,
} as const;

const MI_SIZE: Readonly<Record<number, number>> = {
  1: 1,
  2: 1,
  3: 2,
  4: 2,
  5: 4,
  6: 4,
  7: 4,
  9: 8,
  12: 8,
  13: 8,
};

const MX_CLASS: Readonly<Record<number, string>> = {
  1: 'cell',
  2: 'struct',
  3: 'object',
  4: 'char',
  5: 'sparse',
  6: 'double',
  7: 'single',
  8: 'int8',
  9: 'uint8',
  10: 'int16',
  11: 'uint16',
  12: 'int32',
  13: 'uint32',
  14: 'int64',
  15: 'uint64',
};

class Reader {
  readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly little: boolean,
    readonly path: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(msg: string): never {
    throw new Error(`MAT-file ${this.path}: ${msg}`);
  }

  u32(pos: number): number {
    if (pos + 4 > this.bytes.length) this.fail(`truncated (wanted 4 bytes at byte ${pos})`);
    return this.view.getUint32(pos, this.little);
  }

  /** A data element's tag: type, size and where its data starts and the next element begins. */
  tag(pos: number, end: number): { type: number; size: number; data: number; next: number } {
    if (pos + 8 > end) this.fail(`truncated (an element tag at byte ${pos} runs past the end)`);
    const first = this.u32(pos);
    if (first >>> 16 !== 0) {
      // Small data element: type and size share the first word, data fits in the second.
      return { type: first & 0xffff, size: first >>> 16, data: pos + 4, next: pos + 8 };
    }
    const size = this.u32(pos + 4);
    const data = pos + 8;
    if (data + size > end)
      this.fail(
        `truncated or corrupt (an element at byte ${pos} claims ${size} bytes, past the end)`,
      );
    // Elements are padded to 8 bytes, except compressed ones.
    const next = first === MI.COMPRESSED ? data + size : data + Math.ceil(size / 8) * 8;
    return { type: first, size, data, next: Math.min(next, end) };
  }

  numbers(type: number, pos: number, size: number, what: string): Float64Array {
    const width = MI_SIZE[type];
    if (!width) this.fail(`${what} has an unsupported element type ${type}`);
    const n = Math.floor(size / width);
    const out = new Float64Array(n);
    const v = this.view;
    const le = this.little;
    for (let i = 0; i < n; i++) {
      const p = pos + i * width;
      switch (type) {
        case MI.INT8:
          out[i] = v.getInt8(p);
          break;
        case MI.UINT8:
          out[i] = v.getUint8(p);
          break;
        case MI.INT16:
          out[i] = v.getInt16(p, le);
          break;
        case MI.UINT16:
          out[i] = v.getUint16(p, le);
          break;
        case MI.INT32:
          out[i] = v.getInt32(p, le);
          break;
        case MI.UINT32:
          out[i] = v.getUint32(p, le);
          break;
        case MI.SINGLE:
          out[i] = v.getFloat32(p, le);
          break;
        case MI.DOUBLE:
          out[i] = v.getFloat64(p, le);
          break;
        case MI.INT64:
          out[i] = Number(v.getBigInt64(p, le));
          break;
        case MI.UINT64:
          out[i] = Number(v.getBigUint64(p, le));
          break;
      }
    }
    return out;
  }
}

function parseMatrix(
  r: Reader,
  start: number,
  end: number,
  arrays: Map<string, MatArray>,
  other: { name: string; class: string }[],
): void {
  if (start === end) return; // an empty matrix element (e.g. an empty cell)
  const flags = r.tag(start, end);
  if (flags.type !== MI.UINT32 || flags.size < 8) r.fail('a variable has no array-flags field');
  const word = r.u32(flags.data);
  const cls = word & 0xff;
  const complex = (word & 0x0800) !== 0;
  const logical = (word & 0x0200) !== 0;
  const dimsTag = r.tag(flags.next, end);
  if (dimsTag.type !== MI.INT32) r.fail('a variable has no dimensions field');
  const dims = Array.from(r.numbers(MI.INT32, dimsTag.data, dimsTag.size, 'dimensions'));
  const nameTag = r.tag(dimsTag.next, end);
  const name = Buffer.from(r.bytes.subarray(nameTag.data, nameTag.data + nameTag.size)).toString(
    'latin1',
  );
  const className = MX_CLASS[cls] ?? `class ${cls}`;
  if (cls < 6 || cls > 15 || complex) {
    other.push({ name, class: complex ? `complex ${className}` : className });
    return;
  }
  const real = r.tag(nameTag.next, end);
  const data = r.numbers(real.type, real.data, real.size, `variable "${name}"`);
  const count = dims.reduce((a, b) => a * b, 1);
  if (data.length !== count)
    r.fail(`variable "${name}" holds ${data.length} values for dimensions ${dims.join('×')}`);
  arrays.set(name, { name, class: logical ? 'logical' : className, dims, data });
}

function parseElements(
  r: Reader,
  start: number,
  end: number,
  arrays: Map<string, MatArray>,
  other: { name: string; class: string }[],
): void {
  let pos = start;
  while (pos + 8 <= end) {
    const t = r.tag(pos, end);
    if (t.type === MI.COMPRESSED) {
      let inner: Buffer;
      try {
        inner = inflateSync(r.bytes.subarray(t.data, t.data + t.size));
      } catch (err) {
        r.fail(`a compressed variable at byte ${pos} is corrupt (${(err as Error).message})`);
      }
      const sub = new Reader(inner, r.little, r.path);
      parseElements(sub, 0, inner.length, arrays, other);
    } else if (t.type === MI.MATRIX) {
      parseMatrix(r, t.data, t.data + t.size, arrays, other);
    }
    pos = t.next;
  }
}

/**
 * Read the numeric variables of a Level 5 MAT-file (MATLAB -v6 or -v7).
 * `path` names the file in errors, which say what is wrong (truncated,
 * corrupt, v7.3/HDF5, not a MAT-file).
 */
export function parseMat(bytes: Uint8Array, path: string): MatFile {
  const head = Buffer.from(bytes.subarray(0, Math.min(116, bytes.length))).toString('latin1');
  if (head.startsWith('MATLAB 7.3 MAT-file'))
    throw new Error(
      `MAT-file ${path} is a MATLAB v7.3 file (HDF5), which this reader does not read; save it with -v7`,
    );
  if (bytes.length < 128 || !head.startsWith('MATLAB 5.0 MAT-file'))
    throw new Error(
      `MAT-file ${path} is not a MATLAB 5.0 MAT-file (${bytes.length < 128 ? 'shorter than its 128-byte header' : 'no "MATLAB 5.0 MAT-file" header'})`,
    );
  const endian = String.fromCharCode(bytes[126] as number, bytes[127] as number);
  if (endian !== 'IM' && endian !== 'MI')
    throw new Error(`MAT-file ${path}: unknown byte-order mark "${endian}"`);
  const r = new Reader(bytes, endian === 'IM', path);
  const arrays = new Map<string, MatArray>();
  const other: { name: string; class: string }[] = [];
  parseElements(r, 128, bytes.length, arrays, other);
  return { arrays, other };
}

/** The numeric variable `name`, or an error naming the file and listing what it holds. */
export function matVariable(file: MatFile, name: string, path: string): MatArray {
  const v = file.arrays.get(name);
  if (v) return v;
  const held = [...file.arrays.keys(), ...file.other.map((o) => `${o.name} (${o.class})`)];
  throw new Error(
    `MAT-file ${path} has no numeric variable "${name}" (it holds: ${held.length > 0 ? held.join(', ') : 'nothing'})`,
  );
}
