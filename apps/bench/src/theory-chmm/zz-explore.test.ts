import { it } from 'vitest';
import { runChmmExperiment } from './experiment.js';

it('explore', async () => {
  for (const [D, N, K, lambda] of [
    [50, 100, 100, 0.1],
    [100, 200, 200, 0.1],
    [50, 100, 100, 1],
  ] as const) {
    const t0 = Date.now();
    const recs = await runChmmExperiment({
      params: { D, N, activation: 'erf' },
      nSource: 10,
      nTargetList: [0.5, 1, 2, 4].map((a) => a * K),
      hidden: K,
      seeds: [0, 1],
      methods: ['random-features'],
      targetRepeats: 8,
      readout: { lambda },
    });
    for (const r of recs)
      console.log(
        D,
        N,
        K,
        lambda,
        r.seed,
        r.task.padEnd(22),
        r.method,
        'meas',
        r.metrics.measured_test_error?.toFixed(4),
        '±',
        ((r.metrics.measured_test_error_sd ?? 0) / Math.sqrt(8)).toFixed(4),
        'pred',
        r.metrics.predicted_test_error?.toFixed(4),
        'diff',
        ((r.metrics.predicted_test_error ?? 0) - (r.metrics.measured_test_error ?? 0)).toFixed(4),
      );
    console.log('time', (Date.now() - t0) / 1000);
  }
}, 900_000);
