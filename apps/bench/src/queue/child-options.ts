/**
 * What a worker hands its sandboxed children (trial-processor.ts): kept apart
 * so the worker's own process does not load what the children run.
 */
import { z } from 'zod';

/** The environment variable through which the worker hands its options to its children. */
export const CHILD_OPTIONS_ENV = 'TRANSFERLAB_WORKER_OPTIONS';

export const childOptionsSchema = z.object({
  backend: z.string(),
  cacheDir: z.string().optional(),
  /** The worker's name (host:pid of the parent), for messages. */
  name: z.string(),
});
export type ChildOptions = z.infer<typeof childOptionsSchema>;
