/**
 * The built-in suites are YAML files in `apps/bench/suites/` (one per suite,
 * the format a user's own suite file has); this module loads them.
 */
import { builtinSuiteIds, type LoadedSuite, loadSuite } from './suite-file.js';

export type { SuiteSpec } from './run-suite.js';

/** Every built-in suite, validated against its kind's schema. */
export function builtinSuites(): LoadedSuite[] {
  return builtinSuiteIds().map((id) => loadSuite(id));
}
