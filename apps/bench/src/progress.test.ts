import { afterEach, describe, expect, it, vi } from 'vitest';
import { createProgress } from './progress.js';

const terminal = (columns: number | undefined) => {
  const written: string[] = [];
  const stream = {
    isTTY: true,
    columns,
    write: (s: string) => written.push(s) > 0,
  } as unknown as NodeJS.WriteStream;
  return { stream, written };
};

describe('createProgress', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('draws on a terminal that reports 0 columns (or none) without throwing', () => {
    vi.stubEnv('CI', 'false');
    for (const columns of [0, 1, undefined]) {
      const { stream, written } = terminal(columns);
      const p = createProgress(stream);
      expect(() => {
        p.trial('task · method · seed 0', 0, 3);
        p.epoch('train', 3, 5);
        p.done('task method seed 0: acc 90.0%');
        p.close();
      }).not.toThrow();
      expect(written.join('')).toContain('task method seed 0: acc 90.0%\n');
    }
  });
});
