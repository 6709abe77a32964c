export * from './chmm/index.js';
export { defineTask, normalizePair, splitDefaults } from './define-task.js';
export * from './fashion-mnist.js';
export * from './idx.js';
export * from './merlin/index.js';
export * from './mnist.js';
export * from './tasks.js';
export * from './transforms.js';
export * from './types.js';
