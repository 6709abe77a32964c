/**
 * A registry is a plain list turned into a map: duplicates are an error when
 * it is built, and an unknown id is an error that lists the valid ones. No
 * global state: whoever needs a registry builds one from an explicit list.
 */
export interface Registry<T extends { readonly id: string }> {
  readonly kind: string;
  readonly ids: readonly string[];
  readonly items: readonly T[];
  has(id: string): boolean;
  get(id: string): T;
}

export class UnknownIdError extends Error {
  constructor(
    readonly kind: string,
    readonly id: string,
    readonly validIds: readonly string[],
  ) {
    super(`Unknown ${kind} "${id}". Valid ${kind} ids: ${validIds.join(', ') || '(none)'}`);
    this.name = 'UnknownIdError';
  }
}

export function createRegistry<T extends { readonly id: string }>(
  kind: string,
  items: readonly T[],
): Registry<T> {
  const byId = new Map<string, T>();
  for (const item of items) {
    if (byId.has(item.id)) throw new Error(`Duplicate ${kind} id "${item.id}"`);
    byId.set(item.id, item);
  }
  const ids = [...byId.keys()];
  return {
    kind,
    ids,
    items: [...items],
    has: (id) => byId.has(id),
    get(id) {
      const item = byId.get(id);
      if (item === undefined) throw new UnknownIdError(kind, id, ids);
      return item;
    },
  };
}
