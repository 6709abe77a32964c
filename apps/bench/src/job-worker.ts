/**
 * A worker process of `run --jobs N`: receives units from the parent over
 * IPC, runs them, and sends back each trial's outcome. The parent writes the
 * records; a worker never touches results.jsonl.
 */
import { initBackend } from '@transferlab/core';
import type { FromWorker, KeyedUnit, ToWorker } from './execute.js';
import { unitDoneCheck } from './execute.js';
import { builtinKindRegistry } from './kinds.js';
import type { Progress } from './progress.js';
import { registriesForSuite } from './suite-file.js';
import type { BaseSuite } from './suite-kind.js';

const send = (m: FromWorker) => process.send?.(m);
const silent: Progress = { trial() {}, epoch() {}, done() {}, close() {} };

let init: Extract<ToWorker, { type: 'init' }> | undefined;
let ready: Promise<{ backend: string; registries: Awaited<ReturnType<typeof registriesForSuite>> }>;

// The parent gone (killed, even by SIGKILL): stop rather than run on unseen.
process.on('disconnect', () => process.exit(0));

process.on('message', (m: ToWorker) => {
  if (m.type === 'init') {
    init = m;
    ready = (async () => {
      const backend = await initBackend(m.backend ? { backend: m.backend } : {});
      const registries = await registriesForSuite(m.suite as BaseSuite);
      return { backend: backend.name, registries };
    })();
    ready.then(
      (r) => send({ type: 'ready', backend: r.backend }),
      (err: Error) => {
        send({ type: 'error', message: err.message });
        process.exit(1);
      },
    );
  } else if (m.type === 'unit') void runUnit(m.unit);
  else if (m.type === 'exit') process.disconnect();
});

async function runUnit(unit: KeyedUnit): Promise<void> {
  if (!init) throw new Error('unit before init');
  const { backend, registries } = await ready;
  const kind = builtinKindRegistry().get(init.kind);
  try {
    await kind.runUnit(init.suite, unit, {
      backend,
      ...(init.engine ? { engine: init.engine } : {}),
      registries,
      progress: silent,
      outDir: init.outDir,
      diskCache: init.diskCache,
      isDone: unitDoneCheck(unit),
      record: (outcome) => send({ type: 'record', outcome }),
    });
    send({ type: 'unit-done', id: unit.id });
  } catch (err) {
    send({ type: 'unit-failed', id: unit.id, message: (err as Error).message });
  }
}
