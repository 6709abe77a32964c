import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultRegistries } from './run-suite.js';
import { applySet, builtinSuiteIds, loadSuite } from './suite-file.js';

const dir = () => mkdtempSync(join(tmpdir(), 'tl-suite-'));
const write = (text: string, name = 'my-suite.yaml') => {
  const file = join(dir(), name);
  writeFileSync(file, text);
  return file;
};

const SUITE = `
id: mine
description: a user's suite
backbone: mlp
seeds: 2
tasks:
  - id: mnist-digits-to-parity
    options: { labelsPerClass: 10 }
  - { id: fashion-to-fashion-coarse, label: fashion-5, options: { labelsPerClass: 5 } }
methods:
  - id: scratch
  - id: fine-tune
    options: { lr: 0.001 }
  - { id: merlin, label: merlin+source, options: { sourceWeight: 1 } }
pretrain: { epochs: 2, maxExamples: 2000 }
`;

describe('suite files', () => {
  it('a YAML suite file loads as a transfer suite with every field', () => {
    const { kind, suite } = loadSuite(write(SUITE));
    expect(kind.id).toBe('transfer');
    expect(suite).toMatchObject({
      id: 'mine',
      seeds: 2,
      tasks: [
        { id: 'mnist-digits-to-parity', options: { labelsPerClass: 10 } },
        { label: 'fashion-5' },
      ],
      pretrain: { epochs: 2, maxExamples: 2000 },
    });
  });

  it('JSON works too', () => {
    const { suite } = loadSuite(
      write(
        JSON.stringify({
          id: 'j',
          description: 'd',
          backbone: 'mlp',
          seeds: 1,
          tasks: [{ id: 'mnist-digits-to-parity' }],
          methods: [{ id: 'scratch' }],
        }),
        's.json',
      ),
    );
    expect(suite.id).toBe('j');
  });

  it('every unknown key is refused with its path, all at once', () => {
    const file = write(
      SUITE.replace('seeds: 2', 'seeds: 2\nseed: 3').replace(
        '  - id: scratch',
        '  - id: scratch\n    optons: { lr: 1 }',
      ),
    );
    expect(() => loadSuite(file)).toThrow(new RegExp(`^${file}: not a valid suite:\\n`));
    expect(() => loadSuite(file)).toThrow(/\n {2}\(top level\): unknown key "seed"/);
    expect(() => loadSuite(file)).toThrow(/\n {2}methods\[0\]: unknown key "optons"/);
    // wrong types name the path too
    expect(() => loadSuite(write(SUITE.replace('seeds: 2', 'seeds: two')))).toThrow(/seeds: /);
    expect(() => loadSuite(write(SUITE.replace('seeds: 2', 'seeds: 0')))).toThrow(/seeds: /);
  });

  it("unknown options inside a method's or a task's options are refused (before any work) with the path", () => {
    const reg = defaultRegistries();
    const m = loadSuite(write(SUITE.replace('options: { lr: 0.001 }', 'options: { lrr: 0.001 }')));
    expect(() => m.kind.check?.(m.suite, reg)).toThrow(
      /methods\[1\]\.options: method "fine-tune": unknown option "lrr"/,
    );
    const t = loadSuite(write(SUITE.replace('labelsPerClass: 10', 'labelsPerClas: 10')));
    expect(() => t.kind.check?.(t.suite, reg)).toThrow(
      /tasks\[0\]\.options: suite "mine": task "mnist-digits-to-parity" has no option "labelsPerClas"/,
    );
  });

  it('a syntax error names file, line and column; a list or scalar is not a suite', () => {
    const file = write('id: x\ntasks: [a, b\n');
    expect(() => loadSuite(file)).toThrow(new RegExp(`${file}:\\d+:\\d+: not valid YAML/JSON`));
    expect(() => loadSuite(write('- a\n- b\n'))).toThrow(/must hold one mapping/);
    expect(() => loadSuite(join(dir(), 'missing.yaml'))).toThrow(/no suite file at/);
  });

  it('an unknown kind lists the valid kinds; an unknown built-in id lists the suites', () => {
    expect(() => loadSuite(write(`kind: nope\n${SUITE}`))).toThrow(
      /Unknown suite kind "nope". Valid suite kind ids: transfer/,
    );
    expect(() => loadSuite('nosuch')).toThrow(/Unknown suite "nosuch". Valid suite ids: .*quick/);
  });

  it('--set changes options, fields and nested values; --methods/--tasks filter by label', () => {
    const file = write(SUITE);
    const { suite } = loadSuite(file, {
      set: [
        'methods.fine-tune.lr=0.003',
        'seeds=5',
        'pretrain.epochs=1',
        'methods.merlin+source.lambda=1e-3',
        'tasks.fashion-5.labelsPerClass=20',
      ],
    });
    const s = suite as unknown as {
      seeds: number;
      methods: { options?: Record<string, unknown> }[];
      tasks: { options?: Record<string, unknown> }[];
      pretrain: { epochs: number };
    };
    expect(s.seeds).toBe(5);
    expect(s.pretrain.epochs).toBe(1);
    expect(s.methods[1]?.options).toEqual({ lr: 0.003 });
    expect(s.methods[2]?.options).toEqual({ sourceWeight: 1, lambda: 0.001 });
    expect(s.tasks[1]?.options).toEqual({ labelsPerClass: 20 });
    const only = loadSuite(file, { methods: ['scratch', 'merlin+source'], tasks: ['fashion-5'] });
    const o = only.suite as unknown as { methods: { id: string }[]; tasks: { id: string }[] };
    expect(o.methods.map((m) => m.id)).toEqual(['scratch', 'merlin']);
    expect(o.tasks.map((t) => t.id)).toEqual(['fashion-to-fashion-coarse']);
    expect(() => loadSuite(file, { methods: ['dann'] })).toThrow(
      /--methods: no "dann" in this suite. Valid: scratch, fine-tune, merlin\+source/,
    );
    expect(() => loadSuite(file, { set: ['methods.dann.lr=1'] })).toThrow(/no entry "dann"/);
    expect(() => loadSuite(file, { set: ['seeds'] })).toThrow(/expects path=value/);
  });

  it('a label with dots is found whole (parity-shortcut-0.5)', () => {
    const raw = {
      tasks: [
        { id: 't', label: 'p-0.5' },
        { id: 't', label: 'p-0' },
      ],
    };
    applySet(raw, 'tasks.p-0.5.strength=2');
    expect(raw.tasks[0]).toEqual({ id: 't', label: 'p-0.5', options: { strength: 2 } });
  });

  it('a method plugin path is made absolute, relative to the suite file', () => {
    const file = write(
      SUITE.replace('  - id: scratch', '  - id: my-method\n    from: ./plugins/my.ts'),
    );
    const { suite } = loadSuite(file);
    const m = (suite as unknown as { methods: { from?: string }[] }).methods[0];
    expect(m?.from).toBe(join(file, '..', 'plugins', 'my.ts'));
  });

  it('every built-in suite file is valid for its kind', () => {
    const ids = builtinSuiteIds();
    expect(ids).toEqual(expect.arrayContaining(['quick', 'l2t-ww-resnet-bn', 'theory-linear']));
    const reg = defaultRegistries();
    for (const id of ids) {
      const { kind, suite } = loadSuite(id);
      expect(suite.id).toBe(id);
      kind.check?.(suite, reg);
    }
  });
});
