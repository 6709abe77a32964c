import type { MetaGradientMode } from './lookahead.js';
import type { L2tWwState, PairStats } from './step.js';

export interface L2tWwPairSummary {
  source: string;
  target: string;
  /** Mean λ over the last minibatch. */
  lambdaMean: number;
  /** Mean λ over all training steps so far. */
  lambdaMeanOverTraining: number;
  /** Entropy of the channel weights over the last minibatch, divided by log C (1 = uniform). */
  channelEntropy: number;
  channelEntropyOverTraining: number;
}

export interface L2tWwSummary {
  pairs: L2tWwPairSummary[];
  steps: number;
  metaGradient: MetaGradientMode;
  /** Target CE at the look-ahead weights, last step (the meta-objective). */
  lastMetaLoss: number;
}

/** What the meta-networks learned: λ and channel-weight entropy per pair (for reports). */
export function l2twwSummary(state: L2tWwState): L2tWwSummary {
  const n = Math.max(1, state.steps);
  return {
    pairs: state.pairs.map((p, i) => {
      const s = state.stats[i] as PairStats;
      return {
        source: p.source,
        target: p.target,
        lambdaMean: s.lambdaLast,
        lambdaMeanOverTraining: s.lambdaSum / n,
        channelEntropy: s.entropyLast,
        channelEntropyOverTraining: s.entropySum / n,
      };
    }),
    steps: state.steps,
    metaGradient: state.config.metaGradient,
    lastMetaLoss: state.lastMetaLoss,
  };
}

/** The summary flattened into bench metrics: `l2t_lambda:<src>-><tgt>`, `l2t_entropy:<src>-><tgt>`. */
export function l2twwMetrics(state: L2tWwState): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of l2twwSummary(state).pairs) {
    out[`l2t_lambda:${p.source}->${p.target}`] = p.lambdaMean;
    out[`l2t_entropy:${p.source}->${p.target}`] = p.channelEntropy;
  }
  return out;
}
