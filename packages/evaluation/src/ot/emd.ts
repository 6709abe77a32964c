import type { MatrixLike } from '../estimators/matrix.js';
import { planCost, transportProblem } from './problem.js';

export interface EmdOptions {
  /** Pivot limit (throws when reached); default 10·(n·m + n + m) + 100000. */
  maxIter?: number;
  /** Allowed |Σa − Σb| relative to the larger mass; default 1e-7. */
  massTol?: number;
}

export interface EmdResult {
  /** min over couplings P of ⟨P, M⟩. */
  cost: number;
  /** An optimal coupling, n rows of length m: row sums a, column sums b. */
  plan: Float64Array[];
  /**
   * Optimal dual potentials: u_i + v_j ≤ M_ij for all i, j, with equality where
   * plan_ij > 0, and Σ a_i u_i + Σ b_j v_j = cost (defined up to a constant
   * shift u + c, v − c).
   */
  u: Float64Array;
  v: Float64Array;
  /** Network-simplex pivots. */
  iterations: number;
}

/**
 * Exact optimal transport (earth mover's distance) between histograms a [n]
 * and b [m] with cost M [n][m]:
 *
 *   min_P ⟨P, M⟩  subject to  P ≥ 0, P 1 = a, Pᵀ 1 = b.
 *
 * a and b must be non-negative with equal total mass (relative `massTol`; b is
 * rescaled to Σa to remove the rounding difference); they need not be
 * normalised, and M may hold any finite costs.
 *
 * Algorithm: primal network simplex on the bipartite transportation network
 * (rows and columns with positive mass only), written for this project:
 * - start from an artificial root joined to every node (rows send their mass
 *   to the root, the root sends each column its mass; artificial arc cost
 *   2·max|M|, large enough that no optimum uses them), a strongly feasible
 *   spanning tree;
 * - pricing by block search (blocks of √(#arcs) arcs, the most negative
 *   reduced cost M_ij − π_i + π_j in the first block that has one), row
 *   segment by row segment with no tree-membership test (tree arcs price at
 *   0), comparing M_ij + π_j with best + π_i: pricing is about half the
 *   time, ~570 arcs per pivot at n = m = 300;
 * - leaving arc: the last blocking arc met when walking the pivot cycle from
 *   its apex in the direction of the entering arc, which keeps the tree
 *   strongly feasible and so rules out cycling on degenerate pivots
 *   (Cunningham 1976; Ahuja, Magnanti, Orlin, Network Flows, §11.5);
 * - the tree is kept as parent pointers plus a preorder thread with subtree
 *   sizes and last successors (as in LEMON's network simplex): the apex is
 *   found by climbing from the endpoint with the smaller subtree, the subtree
 *   cut off by the leaving arc is re-hung on the entering arc in time
 *   proportional to the reversed path (plus the ancestors whose last node
 *   changes), and its potentials shift by one constant in a loop along the
 *   thread.
 * Optimality is certified by the returned potentials (dual feasibility to
 * ~1e-11·max|M| plus complementary slackness).
 */
export function emd(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  M: MatrixLike,
  options: EmdOptions = {},
): EmdResult {
  const p = transportProblem('emd', a, b, M, options.massTol ?? 1e-7);
  const n = p.rows.length;
  const m = p.cols.length;
  // Costs on the support: the problem's own matrix when every row and column
  // has mass (no copy), else the restricted one.
  const full = n === p.n && m === p.m;
  const cost = full ? p.cost : new Float64Array(n * m);
  let maxAbs = 0;
  for (let r = 0; r < n; r++) {
    const src = (p.rows[r] as number) * p.m;
    for (let c = 0; c < m; c++) {
      const v = p.cost[src + (p.cols[c] as number)] as number;
      if (!full) cost[r * m + c] = v;
      if (Math.abs(v) > maxAbs) maxAbs = Math.abs(v);
    }
  }
  const scale = maxAbs > 0 ? maxAbs : 1;
  const supply = new Float64Array(n);
  const demand = new Float64Array(m);
  for (let r = 0; r < n; r++) supply[r] = p.a[p.rows[r] as number] as number;
  for (let c = 0; c < m; c++) demand[c] = p.b[p.cols[c] as number] as number;

  const maxIter = options.maxIter ?? 10 * (n * m + n + m) + 100_000;
  const sol = networkSimplex(supply, demand, cost, scale, maxIter, p.mass);
  // Only tree arcs carry flow: write them straight into the full-size plan.
  const plan = Array.from({ length: p.n }, () => new Float64Array(p.m));
  for (let k = 0; k < n + m; k++) {
    const arc = sol.treeArc[k] as number;
    if (arc >= n * m) continue;
    const r = (arc / m) | 0;
    const row = plan[p.rows[r] as number] as Float64Array;
    row[p.cols[arc - r * m] as number] = sol.treeFlow[k] as number;
  }

  // Duals on the support, then extended to zero-mass rows/columns so that
  // u_i + v_j ≤ M_ij holds everywhere (their value does not change Σ a u + Σ b v).
  const u = new Float64Array(p.n).fill(Number.NaN);
  const v = new Float64Array(p.m).fill(Number.NaN);
  for (let r = 0; r < n; r++) u[p.rows[r] as number] = sol.potential[r] as number;
  for (let c = 0; c < m; c++) v[p.cols[c] as number] = -(sol.potential[n + c] as number);
  for (let i = 0; i < p.n; i++) {
    if (!Number.isNaN(u[i] as number)) continue;
    let best = Number.POSITIVE_INFINITY;
    for (const j of p.cols)
      best = Math.min(best, (p.cost[i * p.m + j] as number) - (v[j] as number));
    u[i] = best;
  }
  for (let j = 0; j < p.m; j++) {
    if (!Number.isNaN(v[j] as number)) continue;
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < p.n; i++)
      best = Math.min(best, (p.cost[i * p.m + j] as number) - (u[i] as number));
    v[j] = best;
  }
  return { cost: planCost(p, plan), plan, u, v, iterations: sol.iterations };
}

interface SimplexSolution {
  /**
   * The n + m tree arcs (arc k < n·m joins row ⌊k/m⌋ and column k mod m;
   * artificial arcs, at zero flow, are ≥ n·m) and their flows.
   */
  treeArc: Int32Array;
  treeFlow: Float64Array;
  /** Node potentials π (rows 0..n−1, columns n..n+m−1), in cost units. */
  potential: Float64Array;
  iterations: number;
}

/**
 * Network simplex for the transportation problem with all supplies and
 * demands > 0 and |costs| ≤ `scale`. Arc k < n·m goes from row ⌊k/m⌋ to
 * column node n + k mod m; arc n·m + v is node v's artificial arc (row v →
 * root, or root → column v), cost 2·scale. Reduced cost of arc (s → t):
 * c − π_s + π_t.
 *
 * Only tree arcs carry flow, so flows live on nodes: `nodeFlow[v]` is the
 * flow on v's arc to its parent, `up[v]` whether v is that arc's tail. The
 * tree's shape is `parent`, a preorder `thread` (circular through the root)
 * with its inverse, subtree sizes `succNum` and each subtree's last node in
 * the thread `lastSucc`; a subtree is the thread segment from its root to its
 * last node. A pivot re-hangs the cut-off subtree and shifts its potentials by
 * one constant (its internal arcs are unchanged); nothing of size n·m is
 * touched but the pricing scan, and nothing is allocated per pivot.
 */
function networkSimplex(
  supply: Float64Array,
  demand: Float64Array,
  cost: Float64Array,
  scale: number,
  maxIter: number,
  mass: number,
): SimplexSolution {
  const n = supply.length;
  const m = demand.length;
  const nm = n * m;
  const root = n + m;
  const numNodes = n + m + 1;
  const numArcs = nm + n + m;
  const ART_COST = 2 * scale;
  const EPS = 1e-11 * scale;

  const nodeFlow = new Float64Array(numNodes);
  const up = new Uint8Array(numNodes);
  const parent = new Int32Array(numNodes).fill(-1);
  const predArc = new Int32Array(numNodes).fill(-1);
  const pi = new Float64Array(numNodes);
  // Preorder thread (circular through the root), its inverse, subtree sizes
  // and each subtree's last node in thread order.
  const thread = new Int32Array(numNodes);
  const revThread = new Int32Array(numNodes);
  const succNum = new Int32Array(numNodes).fill(1);
  const lastSucc = new Int32Array(numNodes);
  const link = (x: number, y: number): void => {
    thread[x] = y;
    revThread[y] = x;
  };

  // Artificial tree: rows point up to the root, the root points down to columns.
  for (let v = 0; v < n + m; v++) {
    parent[v] = root;
    predArc[v] = nm + v;
    lastSucc[v] = v;
    if (v < n) {
      nodeFlow[v] = supply[v] as number;
      up[v] = 1;
      pi[v] = ART_COST; // up arc v → root: c − π_v + π_root = 0
    } else {
      nodeFlow[v] = demand[v - n] as number;
      pi[v] = -ART_COST; // down arc root → v: c − π_root + π_v = 0
    }
    link(v === 0 ? root : v - 1, v);
  }
  link(root - 1, root);
  succNum[root] = numNodes;
  lastSucc[root] = root - 1;

  const blockSize = Math.max(16, Math.ceil(Math.sqrt(numArcs)));
  const colPi = pi.subarray(n, n + m);
  // Pricing position among the real arcs (row-major); the artificial arcs are
  // priced once per wrap-around. Tree arcs need no test: their reduced cost is
  // 0 up to rounding, never below −EPS, so the hot loop (unrolled by two) is
  // one addition and one comparison per arc.
  let next = 0;
  let iterations = 0;
  for (;;) {
    let entering = -1;
    let best = -EPS;
    let k = next;
    let scanned = 0;
    while (scanned <= nm) {
      const end = Math.min(k + blockSize, nm);
      scanned += end - k;
      while (k < end) {
        const i = (k / m) | 0;
        const base = i * m;
        const piI = pi[i] as number;
        const segEnd = Math.min(end, base + m);
        // rc < best  ⇔  M_ij + π_j < best + π_i (up to rounding far below EPS)
        let bound = best + piI;
        let found = -1;
        const jEnd = segEnd - base;
        let j = k - base;
        for (; j + 1 < jEnd; j += 2) {
          const c0 = (cost[base + j] as number) + (colPi[j] as number);
          const c1 = (cost[base + j + 1] as number) + (colPi[j + 1] as number);
          if (c0 < bound) {
            bound = c0;
            found = base + j;
          }
          if (c1 < bound) {
            bound = c1;
            found = base + j + 1;
          }
        }
        if (j < jEnd) {
          const c = (cost[base + j] as number) + (colPi[j] as number);
          if (c < bound) {
            bound = c;
            found = base + j;
          }
        }
        k = segEnd;
        if (found >= 0) {
          entering = found;
          best = (cost[found] as number) - piI + (colPi[found - base] as number);
        }
      }
      if (k === nm) {
        for (let v = 0; v < n + m; v++) {
          const rc = v < n ? ART_COST - (pi[v] as number) : ART_COST + (pi[v] as number);
          if (rc < best) {
            best = rc;
            entering = nm + v;
          }
        }
        k = 0;
      }
      if (entering >= 0) break;
    }
    next = k;
    if (entering < 0) break;
    if (++iterations > maxIter)
      throw new Error(`emd: no optimum after ${maxIter} pivots (raise options.maxIter)`);

    // Pivot cycle: the entering arc s → t plus the tree path t … apex … s.
    let s: number;
    let t: number;
    let enteringCost: number;
    if (entering < nm) {
      s = (entering / m) | 0;
      t = n + (entering - s * m);
      enteringCost = cost[entering] as number;
    } else {
      const v = entering - nm;
      s = v < n ? v : root;
      t = v < n ? root : v;
      enteringCost = ART_COST;
    }
    // Apex: climb from whichever node has the smaller subtree (it cannot be an
    // ancestor of the other).
    let x = s;
    let y = t;
    while (x !== y) {
      if ((succNum[x] as number) < (succNum[y] as number)) x = parent[x] as number;
      else y = parent[y] as number;
    }
    const apex = x;
    // Blocking arcs are those whose flow decreases when δ is pushed around the
    // cycle in the entering arc's direction. On the s side the cycle runs
    // apex → s (downwards): up arcs (tail = child) decrease. On the t side it
    // runs t → apex (upwards): down arcs decrease. Ties: the last blocking arc
    // in cycle order from the apex, i.e. the one nearest s on the s side
    // (strict <, walking up from s), else the one nearest the apex on the t
    // side (<=, walking up from t), which wins over the s side. This keeps the
    // tree strongly feasible, which rules out cycling.
    let delta = Number.POSITIVE_INFINITY;
    let leaveNode = -1;
    let leaveOnS = true;
    for (let v = s; v !== apex; v = parent[v] as number) {
      if (up[v] === 1 && (nodeFlow[v] as number) < delta) {
        delta = nodeFlow[v] as number;
        leaveNode = v;
      }
    }
    for (let v = t; v !== apex; v = parent[v] as number) {
      if (up[v] === 0 && (nodeFlow[v] as number) <= delta) {
        delta = nodeFlow[v] as number;
        leaveNode = v;
        leaveOnS = false;
      }
    }
    if (leaveNode < 0) throw new Error('emd: internal error (unbounded pivot cycle)');

    if (delta > 0) {
      for (let v = s; v !== apex; v = parent[v] as number)
        nodeFlow[v] = (nodeFlow[v] as number) + (up[v] === 1 ? -delta : delta);
      for (let v = t; v !== apex; v = parent[v] as number)
        nodeFlow[v] = (nodeFlow[v] as number) + (up[v] === 1 ? delta : -delta);
    }

    // Re-hang the cut-off subtree S (rooted at leaveNode = w_k) on the
    // entering arc: reverse the stem w_0 = xs, w_1 = parent(xs), …, w_k, then
    // hang xs below the entering arc's other end `vIn`. Each stem node takes
    // over the arc (and flow) that joined it to the node below; the leaving arc
    // drops out.
    const xs = leaveOnS ? s : t;
    const vIn = leaveOnS ? t : s;
    const shift =
      (leaveOnS ? (pi[t] as number) + enteringCost : (pi[s] as number) - enteringCost) -
      (pi[xs] as number);
    const sizeS = succNum[leaveNode] as number;
    const lastS = lastSucc[leaveNode] as number;
    const beforeS = revThread[leaveNode] as number;
    const oldParent = parent[leaveNode] as number;
    // Take S out of the thread; subtrees that ended with S now end before it.
    link(beforeS, thread[lastS] as number);
    for (let w = oldParent; (lastSucc[w] as number) === lastS; w = parent[w] as number) {
      lastSucc[w] = beforeS;
      if (w === root) break;
    }
    for (let w = oldParent; w !== apex; w = parent[w] as number)
      succNum[w] = (succNum[w] as number) - sizeS;
    // New preorder of S: w_0's old subtree, then for i = 1..k, w_i followed by
    // its old subtree minus w_{i−1}'s (a head part w_i … before w_{i−1} and a
    // tail part after w_{i−1}'s subtree … w_i's old last node, maybe empty).
    // New sizes: |S| − (old size of w_{i−1}). Old thread values are read
    // before the links that overwrite them.
    let prev = xs;
    let prevLast = lastSucc[xs] as number;
    let prevRev = revThread[xs] as number;
    let prevNext = thread[prevLast] as number;
    let prevSize = succNum[xs] as number;
    let tail = prevLast;
    succNum[xs] = sizeS;
    let newParent = vIn;
    let newArc = entering;
    let newFlow = delta;
    let newUp = leaveOnS ? 1 : 0;
    for (;;) {
      const w = prev;
      const oldP = parent[w] as number;
      const oldArc = predArc[w] as number;
      const oldFlow = nodeFlow[w] as number;
      const oldUp = up[w] as number;
      parent[w] = newParent;
      predArc[w] = newArc;
      nodeFlow[w] = newFlow;
      up[w] = newUp;
      if (w === leaveNode) break;
      newParent = w;
      newArc = oldArc;
      newFlow = oldFlow;
      newUp = 1 - oldUp;
      // oldP is the next stem node w_i.
      const last = lastSucc[oldP] as number;
      const rev = revThread[oldP] as number;
      const next = last === prevLast ? prevNext : (thread[last] as number);
      const size = succNum[oldP] as number;
      link(tail, oldP);
      if (last !== prevLast) {
        link(prevRev, prevNext);
        tail = last;
      } else tail = prevRev;
      succNum[oldP] = sizeS - prevSize;
      prev = oldP;
      prevLast = last;
      prevRev = rev;
      prevNext = next;
      prevSize = size;
    }
    // Hang S right after vIn (as its first child): every stem node's subtree
    // now ends at `tail`, and so do the subtrees that ended at a leaf vIn.
    for (let w = leaveNode; ; w = parent[w] as number) {
      lastSucc[w] = tail;
      if (w === xs) break;
    }
    link(tail, thread[vIn] as number);
    link(vIn, xs);
    for (let w = vIn; (lastSucc[w] as number) === vIn; w = parent[w] as number) {
      lastSucc[w] = tail;
      if (w === root) break;
    }
    for (let w = vIn; w !== apex; w = parent[w] as number)
      succNum[w] = (succNum[w] as number) + sizeS;
    // Potentials of S by one shift, along the thread.
    for (let w = xs, c = sizeS; c > 0; c--, w = thread[w] as number)
      pi[w] = (pi[w] as number) + shift;
  }

  for (let v = 0; v < n + m; v++) {
    if ((predArc[v] as number) >= nm && (nodeFlow[v] as number) > 1e-9 * mass)
      throw new Error(
        `emd: internal error: artificial flow ${nodeFlow[v]} left at node ${v} (masses unbalanced?)`,
      );
  }
  return {
    treeArc: predArc.subarray(0, n + m),
    treeFlow: nodeFlow.subarray(0, n + m),
    potential: pi.subarray(0, n + m),
    iterations,
  };
}
