/**
 * Speed of the exact OT solver: ms per `emd` call for n = m point clouds in
 * R^2 (standard normal source, shifted target), uniform weights, Euclidean
 * cost — the shape of a class-wise W1 in the Task Transfer Analysis bound —
 * and for random histograms with uniform random costs.
 *
 *   cd /work/main && node --conditions=@transferlab/source --import tsx packages/evaluation/src/ot/emd.bench.ts [sizes…]
 *
 * Default sizes 200 and 500. Each row: two warm-ups, then the median of 5 runs
 * (wall time, CPU time of this process — steadier on a busy machine — and pivots).
 */
import { createRng } from '@transferlab/core';
import { emd } from './emd.js';
import { euclideanCost } from './wasserstein.js';

const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((v) => Number.isInteger(v) && v > 0);
const SIZES = sizes.length > 0 ? sizes : [200, 500];

function median(v: number[]): number {
  const s = v.slice().sort((p, q) => p - q);
  return s[Math.floor(s.length / 2)] as number;
}

function bench(
  label: string,
  n: number,
  make: (seed: number) => { a: number[]; b: number[]; M: Float64Array[] },
): void {
  for (let w = 0; w < 2; w++) {
    const warm = make(100 + w); // warm-up (JIT)
    emd(warm.a, warm.b, warm.M);
  }
  const ms: number[] = [];
  const cpu: number[] = [];
  const pivots: number[] = [];
  for (let run = 1; run <= 5; run++) {
    const { a, b, M } = make(run);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const r = emd(a, b, M);
    ms.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
    pivots.push(r.iterations);
  }
  console.log(
    `${label.padEnd(28)} n = m = ${String(n).padStart(4)}   ${median(ms).toFixed(1).padStart(8)} ms wall ${median(cpu).toFixed(1).padStart(8)} ms cpu   ${median(pivots)} pivots`,
  );
}

for (const n of SIZES) {
  bench('points in R^2, uniform', n, (seed) => {
    const rng = createRng(seed);
    const x = Array.from({ length: n }, () => [rng.normal(), rng.normal()]);
    const y = Array.from({ length: n }, () => [rng.normal() + 1, rng.normal()]);
    const w = new Array(n).fill(1 / n);
    return { a: w, b: w, M: euclideanCost(x, y) };
  });
  bench('random histograms and costs', n, (seed) => {
    const rng = createRng(1000 + seed);
    const hist = () => {
      const h = Array.from({ length: n }, () => rng.next());
      const s = h.reduce((p, q) => p + q, 0);
      return h.map((v) => v / s);
    };
    const M = Array.from({ length: n }, () => Float64Array.from({ length: n }, () => rng.next()));
    return { a: hist(), b: hist(), M };
  });
}
