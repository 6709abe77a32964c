// @transferlab/evaluation alone: the estimators on plain arrays, no tfjs.
import { leep, logME, nce } from '@transferlab/evaluation/estimators';

const probs = [
  [0.9, 0.1],
  [0.8, 0.2],
  [0.2, 0.8],
  [0.1, 0.9],
];
const labels = [0, 0, 1, 1];
const features = [
  [1, 0.1],
  [0.9, -0.2],
  [-1, 0.3],
  [-0.8, 0],
];
const scores = {
  leep: leep(probs, labels),
  nce: nce([0, 0, 1, 1], labels),
  logME: logME(features, labels),
};
for (const [k, v] of Object.entries(scores))
  if (!Number.isFinite(v)) throw new Error(`${k} is ${v}`);
console.log(`estimators ok: ${JSON.stringify(scores)}`);
