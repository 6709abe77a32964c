// MeRLin (arXiv 2011.01418) datasets: semi-synthetic shortcut sources, the
// quadratic theory setting and a text pair. No module here imports values
// from ../tasks.ts at load time, so ../tasks.ts may import this one.
import type { TaskSpec } from '../tasks.js';
import { merlinQuadratic } from './quadratic.js';
import {
  fashionToFashionCoarseShortcut,
  mnist04ToMnist59Shortcut,
  mnistDigitsToParityShortcut,
} from './shortcut.js';
import { spamEasyToHard } from './spam.js';
import { merlinToy } from './toy.js';

export * from './quadratic.js';
export * from './shortcut.js';
export * from './spam.js';
export * from './toy.js';

/** The MeRLin task pairs, in a fixed order. */
export const merlinTasks: readonly TaskSpec[] = [
  mnistDigitsToParityShortcut,
  mnist04ToMnist59Shortcut,
  fashionToFashionCoarseShortcut,
  merlinQuadratic,
  merlinToy,
  spamEasyToHard,
];
