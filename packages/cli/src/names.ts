import type { Session } from './session.js';

/** Id → name for the records a table refers to; an id that is not found is shown as is. */
export class Names {
  constructor(readonly byId: ReadonlyMap<string, string> = new Map()) {}

  of(id: string | null | undefined): string {
    if (!id) return '-';
    return this.byId.get(id) ?? id;
  }
}

type Listing = 'principals' | 'privileges' | 'groups';

/**
 * One list call per kind of record, to show names instead of ids. Only for human output;
 * a list the caller may not read just leaves the ids as they are.
 */
export async function lookUpNames(session: Session, kinds: Listing[]): Promise<Names> {
  const byId = new Map<string, string>();
  await Promise.all(
    kinds.map(async (kind) => {
      try {
        const answer = await session.lookup<Record<string, { id: string; name: string }[]>>(
          'GET',
          `/v1/${kind}`,
        );
        for (const record of answer[kind] ?? []) byId.set(record.id, record.name);
      } catch {
        // Names are a convenience; ids are still correct.
      }
    }),
  );
  return new Names(byId);
}
