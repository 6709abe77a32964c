import { describe, expect, it } from 'vitest';
import { createRegistry, UnknownIdError } from './registry.js';

describe('createRegistry', () => {
  const reg = createRegistry('method', [{ id: 'a' }, { id: 'b' }]);
  it('finds items and lists ids in order', () => {
    expect(reg.get('b')).toEqual({ id: 'b' });
    expect(reg.ids).toEqual(['a', 'b']);
    expect(reg.has('c')).toBe(false);
  });
  it('an unknown id lists the valid ones', () => {
    expect(() => reg.get('zzz')).toThrow(UnknownIdError);
    expect(() => reg.get('zzz')).toThrow('Unknown method "zzz". Valid method ids: a, b');
  });
  it('duplicates are refused', () => {
    expect(() => createRegistry('suite', [{ id: 'x' }, { id: 'x' }])).toThrow(
      /Duplicate suite id "x"/,
    );
  });
});
