import { test } from 'vitest';
import { builtinTasks, classCounts } from './index.js';
test('smoke', async () => {
  for (const spec of builtinTasks) {
    let t = Date.now();
    const p = await spec.build({ seed: 1 });
    console.log(spec.id, Date.now() - t, 'ms', p.source.train.y.length, classCounts(p.source.train).join(','), classCounts(p.target.train).join(','), classCounts(p.target.val).join(','), classCounts(p.target.test).join(','));
  }
});
