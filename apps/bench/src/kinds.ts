import { createRegistry, type Registry } from '@transferlab/core';
import { modelSelectionKind } from './model-selection.js';
import { onnxBackboneKind } from './onnx-backbone.js';
import { transferKind } from './run-suite.js';
import type { AnySuiteKind } from './suite-kind.js';
import { theoryChmmKind } from './theory-chmm/index.js';
import { theoryGcmKind } from './theory-gcm.js';
import { theoryLinearKind } from './theory-linear.js';
import { ttaBoundKind } from './tta-bound.js';

/** Every kind of suite the app runs. A new kind is one entry here. */
export const builtinKinds: readonly AnySuiteKind[] = [
  transferKind,
  theoryLinearKind,
  theoryGcmKind,
  ttaBoundKind,
  modelSelectionKind,
  onnxBackboneKind,
  theoryChmmKind,
];

export function builtinKindRegistry(): Registry<AnySuiteKind> {
  return createRegistry('suite kind', builtinKinds);
}
