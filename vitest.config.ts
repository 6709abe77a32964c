import { defineConfig } from 'vitest/config';

// One root run over every package. The `@transferlab/source` export condition
// points workspace imports at `src/*.ts`, so tests never need a prior build.
export default defineConfig({
  resolve: { conditions: ['@transferlab/source'] },
  ssr: { resolve: { conditions: ['@transferlab/source'] } },
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'apps/*/src/**/*.test.ts',
      'examples/*/src/**/*.test.ts',
    ],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
