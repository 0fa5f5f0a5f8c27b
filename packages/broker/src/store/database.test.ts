import { describe, expect, it } from 'vitest';
import { openStore } from './database.js';

/** Opening a PostgreSQL store connects lazily: these need no server. */
describe('PostgreSQL store location', () => {
  const base = 'postgres://tether@db.invalid:5432/tether';

  it('takes the schema from the URL as libpq writes it, so migrations and channels are named after it', async () => {
    for (const options of [
      '-c search_path=tenant_a',
      '-c search_path=tenant_a,public',
      '--search_path=tenant_a',
    ]) {
      const store = openStore({ location: `${base}?options=${encodeURIComponent(options)}` });
      expect(store.pgSchema, options).toBe('tenant_a');
      await store.close();
    }
  });

  it('uses public when neither the URL nor the options name a schema', async () => {
    const store = openStore({ location: `${base}?application_name=tether` });
    expect(store.pgSchema).toBe('public');
    await store.close();
  });

  it('refuses a URL and an option that name different schemas, and a schema name it cannot quote safely', () => {
    const inUrl = `${base}?options=${encodeURIComponent('-c search_path=tenant_a')}`;
    expect(() => openStore({ location: inUrl, pgSchema: 'tenant_b' })).toThrow(
      'the database URL selects schema tenant_a, not tenant_b',
    );
    for (const schema of ['Tenant', '"x"', 'a;drop', '$user'])
      expect(() =>
        openStore({ location: `${base}?options=${encodeURIComponent(`-c search_path=${schema}`)}` }),
      ).toThrow('invalid schema name');
  });
});
