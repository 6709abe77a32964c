/**
 * Speed of the exact OT solver: ms per `emd` call for n = m point clouds in
 * R^2 (standard normal source, shifted target), uniform weights, Euclidean
 * cost — the shape of a class-wise W1 in the Task Transfer Analysis bound —
 * and for random histograms with uniform random costs.
 *
 *   cd /work/main && node --conditions=@transferlab/source --import tsx packages/evaluation/src/ot/emd.bench.ts [--pot] [sizes…]
 *
 * Default sizes 200 and 500. Each row: 30 warm-ups (V8 tiers up late), then the median of 5 runs
 * (wall time, CPU time of this process — steadier on a busy machine — and pivots).
 * `--pot`: the same problems (written to a temporary directory as float64)
 * are also solved by POT's `ot.emd2` (network simplex in C++) in a Python
 * process started right after each row, timed the same way — needs a Python
 * with POT: `POT_PYTHON` if set, else /usr/bin/python3 if it exists (Debian's,
 * where python3-pot installs; a pyenv python3 first on PATH may lack it), else
 * python3 from PATH.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng } from '@transferlab/core';
import { emd } from './emd.js';
import { euclideanCost } from './wasserstein.js';

const withPot = process.argv.includes('--pot');
const POT_PYTHON =
  process.env.POT_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const WARMUPS = 30;
const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((v) => Number.isInteger(v) && v > 0);

// Times ot.emd2 on problems i = 0..count−1 stored as <dir>/<i>.{a,b,M}.f64: `warm` warm-ups, then the
// median over the rest of wall and process CPU time (ms), as JSON.
const POT_SCRIPT = `
import json, sys, time
import numpy as np, ot
d, n, count, warm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
load = lambda i, k: np.fromfile(f"{d}/{i}.{k}.f64")
probs = [(load(i, "a"), load(i, "b"), load(i, "M").reshape(n, n)) for i in range(count)]
wall, cpu = [], []
for i, (a, b, M) in enumerate(probs):
    c0, t0 = time.process_time(), time.perf_counter()
    ot.emd2(a, b, M, numItermax=10**8)
    if i >= warm:
        wall.append(1000 * (time.perf_counter() - t0)); cpu.append(1000 * (time.process_time() - c0))
print(json.dumps({"wall": float(np.median(wall)), "cpu": float(np.median(cpu)), "version": ot.__version__}))
`;

function potTimes(
  n: number,
  problems: { a: number[]; b: number[]; M: Float64Array[] }[],
): { wall: number; cpu: number; version: string } {
  const dir = mkdtempSync(join(tmpdir(), 'emd-pot-'));
  try {
    problems.forEach((p, i) => {
      const flat = new Float64Array(n * n);
      for (const [r, row] of p.M.entries()) flat.set(row, r * n);
      writeFileSync(join(dir, `${i}.a.f64`), new Float64Array(p.a));
      writeFileSync(join(dir, `${i}.b.f64`), new Float64Array(p.b));
      writeFileSync(join(dir, `${i}.M.f64`), flat);
    });
    const out = execFileSync(
      POT_PYTHON,
      ['-c', POT_SCRIPT, dir, String(n), String(problems.length), String(WARMUPS)],
      { encoding: 'utf8' },
    );
    return JSON.parse(out) as { wall: number; cpu: number; version: string };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
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
  // Warm (JIT-compiled) timings: the first calls run 3–5× slower.
  const warmups = Array.from({ length: WARMUPS }, (_, w) => make(100 + w));
  for (const warm of warmups) emd(warm.a, warm.b, warm.M);
  const problems = [1, 2, 3, 4, 5].map(make);
  const ms: number[] = [];
  const cpu: number[] = [];
  const pivots: number[] = [];
  for (const { a, b, M } of problems) {
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
  if (withPot) {
    const pot = potTimes(n, [...warmups, ...problems]);
    console.log(
      `${`  POT ${pot.version} emd2`.padEnd(28)} n = m = ${String(n).padStart(4)}   ${pot.wall.toFixed(1).padStart(8)} ms wall ${pot.cpu.toFixed(1).padStart(8)} ms cpu   ratio (cpu) ${(median(cpu) / pot.cpu).toFixed(2)}`,
    );
  }
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
