import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkMethodContract, loadMethodPlugin, withPlugins } from './plugins.js';
import { defaultRegistries } from './run-suite.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const EXAMPLE = './examples/method-plugin/src/index.ts';

/** The fields of a minimal valid method, as JavaScript source; a fixture overrides or drops some. */
const VALID: Record<string, string> = {
  specificationVersion: `'v2'`,
  id: `'tmp-method'`,
  title: `'Temporary'`,
  description: `'A method written by the test.'`,
  defaults: '{ epochs: 1, batchSize: 8 }',
  validate: '(o) => ({ epochs: 1, batchSize: 8, ...o })',
  needs: '{ pretrainedBackbone: false, sourceBatches: false }',
  engines: `['tfjs']`,
  init: '() => ({})',
  trainStep: '(state) => ({ state, loss: 0 })',
  predictParams: '() => ({})',
  predict: '() => undefined',
  dispose: '() => {}',
};

function methodSource(changes: Record<string, string | undefined> = {}): string {
  const fields = Object.entries({ ...VALID, ...changes }).filter(([, v]) => v !== undefined);
  return `{\n${fields.map(([k, v]) => `  ${k}: ${v},`).join('\n')}\n}`;
}

/** A fresh directory with the given files (the bad plugins are written per test, never shipped). */
function fixtureDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'tl-plugins-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

async function loadError(from: string, dir: string): Promise<Error> {
  const err = await loadMethodPlugin(from, dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as Error;
}

describe('loadMethodPlugin', () => {
  it('the example plugin (TypeScript, in its own package) loads and meets the contract', async () => {
    const method = await loadMethodPlugin(EXAMPLE, repoRoot);
    expect(method.id).toBe('lp-ft');
    expect(method.specificationVersion).toBe('v2');
    expect(method.engines).toEqual(['onnxruntime', 'tfjs']);
    expect(checkMethodContract(method, EXAMPLE)).toBe(method);
    // An absolute path names the same module.
    expect(await loadMethodPlugin(resolve(repoRoot, EXAMPLE), '/')).toBe(method);
  });

  it('a plugin missing validate: an error naming the file and the field', async () => {
    const dir = fixtureDir({
      'no-validate.js': `export default ${methodSource({ validate: undefined })};\n`,
    });
    const err = await loadError('./no-validate.js', dir);
    expect(err.message).toMatch(
      /^plugin \.\/no-validate\.js: "validate" must be a function \(got undefined\) — see TransferMethod/,
    );
    // Only the faulty field is named.
    expect(err.message).not.toMatch(/"(id|needs|init|trainStep)"/);
  });

  it('a plugin of another contract version: an error naming the version expected and found', async () => {
    const dir = fixtureDir({
      'v1.mjs': `export default ${methodSource({ specificationVersion: `'v1'` })};\n`,
    });
    const err = await loadError('./v1.mjs', dir);
    expect(err.message).toMatch(
      /^plugin \.\/v1\.mjs: "specificationVersion" must be "v2", the TransferMethod contract version this @transferlab\/methods implements \(got "v1"\)/,
    );
  });

  it('reports every fault at once, nested fields by their path', async () => {
    const dir = fixtureDir({
      'bad.js': `export default ${methodSource({
        specificationVersion: undefined,
        id: `'My Method'`,
        validate: `'yes'`,
        needs: '{ pretrainedBackbone: 1 }',
        engines: `['gpu']`,
        defaults: '{ epochs: 0, batchSize: 8 }',
        dispose: undefined,
        metrics: '42',
      })};\n`,
    });
    const { message } = await loadError('./bad.js', dir);
    for (const fault of [
      '"specificationVersion" must be "v2"',
      '(got undefined)',
      '"id" must be a kebab-case string such as "my-method"',
      '(got "My Method")',
      '"validate" must be a function (got "yes")',
      '"needs.pretrainedBackbone" must be a boolean (got 1)',
      '"needs.sourceBatches" must be a boolean (got undefined)',
      '"engines[0]" must be one of "onnxruntime", "tfjs" (got "gpu")',
      '"defaults.epochs" must be a positive integer (got 0)',
      '"dispose" must be a function (got undefined)',
      '"metrics" must be a function (got 42)',
    ])
      expect(message).toContain(fault);
    expect(message.split('; ')).toHaveLength(9);
    expect(message).toContain('see TransferMethod in @transferlab/methods');
  });

  it('a file that throws on import: an error with the cause', async () => {
    const dir = fixtureDir({
      'throws.js': `throw new Error('TRANSFERLAB_KEY is not set');\nexport default {};\n`,
    });
    const err = await loadError('./throws.js', dir);
    expect(err.message).toBe(
      `plugin ./throws.js: importing ${join(dir, 'throws.js')} failed: TRANSFERLAB_KEY is not set`,
    );
    expect((err.cause as Error).message).toBe('TRANSFERLAB_KEY is not set');
  });

  it('a file with no method export: an error listing the exports found', async () => {
    const dir = fixtureDir({
      'helpers.js': `export const lr = 0.01;\nexport function schedule() {}\nexport const name = 'x';\n`,
      'empty.js': `export {};\n`,
    });
    const err = await loadError('./helpers.js', dir);
    expect(err.message).toBe(
      'plugin ./helpers.js: no export looks like a TransferMethod (exports found: lr (0.01), name ("x"), schedule (a function)); export the method as the default export, or as "method"',
    );
    expect((await loadError('./empty.js', dir)).message).toMatch(/\(it has no exports\)/);
  });

  it('a file that is not there: an error naming the resolved path', async () => {
    const dir = fixtureDir({});
    const err = await loadError('./my-method.js', dir);
    expect(err.message).toBe(
      `plugin ./my-method.js: file not found: ${join(dir, 'my-method.js')} (resolved against ${dir})`,
    );
    expect((await loadError('no-such-plugin-package', dir)).message).toMatch(
      /plugin no-such-plugin-package: package "no-such-plugin-package" not found in any node_modules/,
    );
  });

  it('picks the default export, else the one method-shaped export, else "method"; TypeScript loads; .js names the .ts source', async () => {
    const dir = fixtureDir({
      'named.js': `export const helper = 3;\nexport const myMethod = ${methodSource({ id: `'named-one'` })};\n`,
      'two.js': `export const a = ${methodSource({ id: `'a'` })};\nexport const method = ${methodSource({ id: `'b'` })};\n`,
      'ambiguous.js': `export const a = ${methodSource({ id: `'a'` })};\nexport const b = ${methodSource({ id: `'b'` })};\n`,
      'typed.ts': `interface Needs { pretrainedBackbone: boolean; sourceBatches: boolean }\nconst needs: Needs = { pretrainedBackbone: false, sourceBatches: false };\nexport default ${methodSource({ id: `'typed-one'`, needs: 'needs' })};\n`,
    });
    expect((await loadMethodPlugin('./named.js', dir)).id).toBe('named-one');
    expect((await loadMethodPlugin('./two.js', dir)).id).toBe('b');
    expect((await loadError('./ambiguous.js', dir)).message).toMatch(
      /several exports look like methods \(a, b\)/,
    );
    expect((await loadMethodPlugin('./typed.ts', dir)).id).toBe('typed-one');
    expect((await loadMethodPlugin('./typed.js', dir)).id).toBe('typed-one');
  });

  it('resolves a package name from the base directory through its exports', async () => {
    const dir = fixtureDir({
      'node_modules/@someone/tl-method/package.json': JSON.stringify({
        name: '@someone/tl-method',
        type: 'module',
        exports: { '.': { import: './dist/index.js', require: './dist/index.cjs' } },
      }),
      'node_modules/@someone/tl-method/dist/index.js': `export default ${methodSource({ id: `'packaged'` })};\n`,
    });
    mkdirSync(join(dir, 'suites'));
    expect((await loadMethodPlugin('@someone/tl-method', join(dir, 'suites'))).id).toBe('packaged');
  });
});

describe('checkMethodContract', () => {
  it('refuses a value that is not an object, naming where it came from', () => {
    expect(() => checkMethodContract(undefined, './x.js')).toThrow(
      /^plugin \.\/x\.js: the export is not a TransferMethod object \(got undefined\)/,
    );
  });

  it('accepts every built-in method, and a method without engines (tfjs by default)', () => {
    for (const method of defaultRegistries().methods.items)
      expect(checkMethodContract(method, method.id)).toBe(method);
    const { engines: _, ...noEngines } = defaultRegistries().methods.get('scratch');
    expect(() => checkMethodContract(noEngines, 'x')).not.toThrow();
    expect(() => checkMethodContract({ ...noEngines, engines: [] }, 'x')).toThrow(
      /"engines" must list at least one engine/,
    );
  });
});

describe('withPlugins', () => {
  it('returns new registries with the plugin; the given ones are unchanged', async () => {
    const base = defaultRegistries();
    const reg = await withPlugins(base, [{ id: 'lp-ft', from: EXAMPLE }], repoRoot);
    expect(reg.methods.get('lp-ft').id).toBe('lp-ft');
    expect(reg.methods.ids).toEqual([...base.methods.ids, 'lp-ft']);
    expect(base.methods.has('lp-ft')).toBe(false);
    expect(reg.tasks).toBe(base.tasks);
    expect(reg.backbones).toBe(base.backbones);
    // An unknown id still lists the valid ones, the plugin's included.
    expect(() => reg.methods.get('lpft')).toThrow(
      /Unknown method "lpft". Valid method ids: .*lp-ft/,
    );
    // The same plugin twice (two option sets in one suite) is loaded once.
    const twice = await withPlugins(
      base,
      [
        { id: 'lp-ft', from: EXAMPLE },
        { id: 'lp-ft', from: resolve(repoRoot, EXAMPLE) },
      ],
      repoRoot,
    );
    expect(twice.methods.ids.filter((id) => id === 'lp-ft')).toHaveLength(1);
  });

  it('a plugin whose id is a built-in method: an error naming both', async () => {
    const dir = fixtureDir({
      'clash.js': `export default ${methodSource({ id: `'fine-tune'` })};\n`,
    });
    await expect(
      withPlugins(defaultRegistries(), [{ id: 'fine-tune', from: './clash.js' }], dir),
    ).rejects.toThrow(
      'plugin ./clash.js: method id "fine-tune" clashes with the built-in method "fine-tune" (Fine-tuning); give the plugin an id of its own',
    );
  });

  it("the suite's id must be the plugin's own id; one id from two files is an error", async () => {
    const dir = fixtureDir({
      'one.js': `export default ${methodSource({ id: `'mine'` })};\n`,
      'other.js': `export default ${methodSource({ id: `'mine'` })};\n`,
    });
    await expect(
      withPlugins(defaultRegistries(), [{ id: 'my-method', from: './one.js' }], dir),
    ).rejects.toThrow(
      'plugin ./one.js: the suite names it "my-method" but its method\'s id is "mine"; use id: mine in the suite, or change the plugin\'s id',
    );
    await expect(
      withPlugins(
        defaultRegistries(),
        [
          { id: 'mine', from: './one.js' },
          { id: 'mine', from: './other.js' },
        ],
        dir,
      ),
    ).rejects.toThrow(/plugins \.\/one\.js and \.\/other\.js both define method "mine"/);
  });
});
