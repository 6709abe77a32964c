import { describe, expect, it } from 'vitest';
import { builtinTasks, createTaskRegistry } from '../tasks.js';
import { merlinTasks } from './index.js';

describe('merlinTasks', () => {
  it('lists the MeRLin pairs with ids distinct from the built-in tasks', () => {
    expect(merlinTasks.map((t) => t.id)).toEqual([
      'mnist-digits-to-parity-shortcut',
      'mnist04-to-mnist59-shortcut',
      'fashion-to-fashion-coarse-shortcut',
      'merlin-quadratic',
      'merlin-toy',
      'spam-easy-to-hard',
    ]);
    // they are part of the built-in list, each once
    const registry = createTaskRegistry(builtinTasks);
    expect(registry.get('merlin-quadratic')).toBe(merlinTasks[3]);
    for (const t of merlinTasks) expect(t.description.length).toBeGreaterThan(40);
  });
});
