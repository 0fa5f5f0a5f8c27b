import { createHash } from 'node:crypto';
import type { SessionReceipt } from '@tether-broker/protocol';
import type { AuditVerificationView, RecordingView, SessionView } from '@tether-broker/protocol/api';
import { CompactSign, exportJWK, generateKeyPair } from 'jose';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { endLapsedRecordings } from '../../packages/broker/src/recordings/end-lapsed-recordings.js';
import type { Store } from '../../packages/broker/src/store/database.js';
import { BoundSession, RECORDING_PROOF_TYP, SessionRecorder } from '../../packages/client/src/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const HEADER = '{"version":2,"width":80,"height":24}\n';

describeEachStore('recorded sessions', (fixture) => {
  let store: Store;
  let b: TestBroker;
  let s: Scenario;
  afterAll(() => fixture.cleanup());

  beforeEach(async () => {
    store = await fixture.open();
    b = await startTestBroker(store, {
      config: { limits: { recordingChunkBytes: 4096, recordingBytesPerSession: 64 * 1024 } },
    });
    s = await setUpScenario(b);
    await s.admin.call('PATCH', '/v1/privileges/deploy', { recording: 'output' });
  });
  afterEach(async () => {
    await b.close();
    await store.close();
  });

  async function activate(): Promise<BoundSession> {
    const created = await s.pipeline.client.call<{ id: string }>('POST', '/v1/requests', {
      privilege: 'deploy',
      ticket: 'CHG-4',
      justification: 'restart the web service',
      duration: 900,
    });
    return BoundSession.activate(s.pipeline.client, created.id);
  }

  /** A chunk as the holder would send it, signed by `key` (the session key unless given). */
  async function chunk(
    session: BoundSession,
    seq: number,
    data: string,
    options: { key?: BoundSession['key']; sid?: string; sha?: string; final?: boolean } = {},
  ) {
    const key = options.key ?? session.key;
    const proof = await new CompactSign(
      new TextEncoder().encode(
        JSON.stringify({
          sid: options.sid ?? session.info.id,
          seq,
          sha256: options.sha ?? sha256(data),
          iat: Math.floor(b.clock.now() / 1000),
          ...(options.final ? { final: true } : {}),
        }),
      ),
    )
      .setProtectedHeader({ alg: 'EdDSA', typ: RECORDING_PROOF_TYP, jwk: key.publicJwk })
      .sign(key.privateKey);
    return { proof, data };
  }

  const upload = (session: BoundSession, body: { proof: string; data: string }, who = s.pipeline.client) =>
    who.call('POST', `/v1/sessions/${session.info.id}/recording`, body);
  const recording = (id: string) => s.admin.call<RecordingView>('GET', `/v1/sessions/${id}/recording`);
  const verify = () => s.admin.call<AuditVerificationView>('GET', '/v1/audit/verify');

  /** A session recorded by the SDK's recorder: output in several chunks, then the final one. */
  async function recordedSession(): Promise<BoundSession> {
    const session = await activate();
    const lost: string[] = [];
    const recorder = new SessionRecorder(session, {
      onLost: (why) => lost.push(why),
      flushIntervalMs: 60_000,
    });
    recorder.start(100, 30);
    recorder.output('$ systemctl restart web\r\n');
    recorder.output(`${'log line\r\n'.repeat(900)}`);
    recorder.resize(120, 40);
    recorder.output('done\r\n');
    expect(await recorder.close()).toBe(true);
    expect(lost).toEqual([]);
    return session;
  }

  it('streams the recording in signed chunks: served whole to auditors, its digest in the receipt, every chunk hash in the audit chain', async () => {
    const session = await recordedSession();
    expect(session.info.recording).toMatchObject({
      mode: 'output',
      lapse_seconds: 30,
      max_chunk_bytes: 4096,
    });
    const view = await recording(session.info.id);
    expect(view.chunks).toBeGreaterThan(2);
    expect(view.complete).toBe(true);
    const lines = view.cast.split('\n').filter((l) => l !== '');
    expect(JSON.parse(lines[0]!)).toMatchObject({ version: 2, width: 100, height: 30 });
    const events = lines.slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    expect(
      events
        .filter((e) => e[1] === 'o')
        .map((e) => e[2])
        .join(''),
    ).toBe(`$ systemctl restart web\r\n${'log line\r\n'.repeat(900)}done\r\n`);
    expect(events).toContainEqual([expect.any(Number), 'r', '120x40']);

    // The digest chains every chunk's hash, recomputable by anyone holding the chunks.
    const rows = await store.db
      .selectFrom('recording_chunks')
      .select(['seq', 'data'])
      .where('session_id', '=', session.info.id)
      .orderBy('seq')
      .execute();
    let digest = '0'.repeat(64);
    for (const row of rows) digest = sha256(`${digest}${sha256(row.data)}`);
    expect(view.digest).toBe(digest);
    await session.end();
    const receipt = await s.admin.call<SessionReceipt>('GET', `/v1/sessions/${session.info.id}/receipt`);
    expect(receipt.recording).toEqual({
      mode: 'output',
      chunks: rows.length,
      bytes: view.bytes,
      digest,
      complete: true,
    });
    const audit = await s.admin.call<{ records: { action: string; details: Record<string, unknown> }[] }>(
      'GET',
      '/v1/audit?limit=1000',
    );
    const chunkRecords = audit.records.filter((r) => r.action === 'session.recording_chunk');
    expect(chunkRecords.map((r) => r.details.sha256).sort()).toEqual(rows.map((r) => sha256(r.data)).sort());
    expect((await verify()).ok).toBe(true);
    // Only auditors and admins read recordings: not even the holder.
    expect(
      (await refusal(s.pipeline.client.call('GET', `/v1/sessions/${session.info.id}/recording`))).code,
    ).toBe('forbidden');
  });

  it('a chunk edited, removed or slipped in with SQL is named by audit verify', async () => {
    const session = await recordedSession();
    const id = session.info.id;
    expect((await verify()).ok).toBe(true);
    const saved = await store.db
      .selectFrom('recording_chunks')
      .selectAll()
      .where('session_id', '=', id)
      .where('seq', '=', 1)
      .executeTakeFirstOrThrow();
    const records = await s.admin.call<{
      records: { action: string; seq: number; details: { seq: number } }[];
    }>('GET', '/v1/audit?limit=1000');
    const itsRecord = records.records.find(
      (r) => r.action === 'session.recording_chunk' && r.details.seq === 1,
    )!;

    // Edited: the chain holds the hash the chunk had.
    await sql`update recording_chunks set data = ${'[0.1,"o","nothing to see\r\n"]\n'} where session_id = ${id} and seq = 1`.execute(
      store.db,
    );
    const edited = await verify();
    expect(edited).toMatchObject({ ok: false, first_bad: { fault: 'recording_edited', seq: itsRecord.seq } });
    expect(edited.first_bad!.message).toContain(`chunk 1 of session ${id}`);
    await sql`update recording_chunks set data = ${saved.data} where session_id = ${id} and seq = 1`.execute(
      store.db,
    );
    expect((await verify()).ok).toBe(true);

    // Removed.
    await sql`delete from recording_chunks where session_id = ${id} and seq = 1`.execute(store.db);
    const missing = await verify();
    expect(missing).toMatchObject({
      ok: false,
      first_bad: { fault: 'recording_missing', seq: itsRecord.seq },
    });
    expect(missing.first_bad!.message).toContain(`chunk 1 of session ${id}`);
    await store.db.insertInto('recording_chunks').values(saved).execute();
    expect((await verify()).ok).toBe(true);

    // Slipped in afterwards, with a hash that matches its own text.
    const forged = '[99,"o","all fine\r\n"]\n';
    await store.db
      .insertInto('recording_chunks')
      .values({ ...saved, seq: 999, data: forged, sha256: sha256(forged) })
      .execute();
    const slipped = await verify();
    expect(slipped).toMatchObject({ ok: false, first_bad: { fault: 'recording_unrecorded' } });
    expect(slipped.first_bad!.message).toContain(`chunk 999 of session ${id}`);
  });

  it('refuses forged, replayed, misdirected and malformed chunks, changing nothing', async () => {
    const session = await activate();
    const id = session.info.id;
    const before = async () => ({
      chunks: (
        await store.db.selectFrom('recording_chunks').select('seq').where('session_id', '=', id).execute()
      ).length,
      audit: (await store.db.selectFrom('audit_heads').select('seq').executeTakeFirst())?.seq,
    });
    const stolenKey = await (async () => {
      const pair = await generateKeyPair('Ed25519');
      const publicJwk = await exportJWK(pair.publicKey);
      return { ...session.key, privateKey: pair.privateKey, publicJwk };
    })();
    const first = `${HEADER}[0.5,"o","hello\\r\\n"]\n`;
    // Each caller's API token first (its issuance is audited), so that only the refusals remain.
    await s.outsider.client.call('GET', '/v1/me');
    const start = await before();

    // Signed by another key than the session's.
    expect((await refusal(upload(session, await chunk(session, 0, first, { key: stolenKey })))).code).toBe(
      'invalid_signature',
    );
    // Data that is not what the proof signed.
    const genuine = await chunk(session, 0, first);
    expect((await refusal(upload(session, { ...genuine, data: `${HEADER}[0.5,"o","rm -rf"]\n` }))).code).toBe(
      'invalid_request',
    );
    // A proof naming another session.
    expect(
      (
        await refusal(
          upload(session, await chunk(session, 0, first, { sid: 'ses_00000000000000000000000000' })),
        )
      ).code,
    ).toBe('invalid_request');
    // Keystrokes where the privilege records output only (they may carry passwords).
    expect(
      (await refusal(upload(session, await chunk(session, 0, `${HEADER}[0.1,"i","secret"]\n`)))).code,
    ).toBe('invalid_request');
    // Not asciicast: no header first.
    expect((await refusal(upload(session, await chunk(session, 0, '[0.1,"o","x"]\n')))).code).toBe(
      'invalid_request',
    );
    // Somebody else: the outsider cannot see it; an admin sees it but may not add to it.
    expect((await refusal(upload(session, genuine, s.outsider.client))).code).toBe('not_found');
    expect((await refusal(upload(session, genuine, s.admin))).code).toBe('forbidden');
    expect(await before()).toEqual(start);

    await upload(session, genuine);
    const afterOne = await before();
    // The same chunk again (a replay) is answered as taken and adds nothing; another chunk at
    // a taken position, or one that skips a position, is refused.
    await upload(session, genuine);
    expect(
      (await refusal(upload(session, await chunk(session, 0, `${HEADER}[0.6,"o","other"]\n`)))).code,
    ).toBe('recording_out_of_order');
    expect((await refusal(upload(session, await chunk(session, 5, '[1,"o","x"]\n')))).code).toBe(
      'recording_out_of_order',
    );
    // Time going backwards.
    expect((await refusal(upload(session, await chunk(session, 1, '[0.1,"o","x"]\n')))).code).toBe(
      'invalid_request',
    );
    expect(await before()).toEqual(afterOne);

    // A session whose privilege does not record has no recording to add to.
    await s.admin.call('PATCH', '/v1/privileges/deploy', { recording: 'none' });
    const plain = await activate();
    expect(plain.info.recording).toBeUndefined();
    expect((await refusal(upload(plain, await chunk(plain, 0, first)))).code).toBe('invalid_request');
  });

  it('ends a recorded session whose recording lapses; heartbeats keep it alive', async () => {
    const silent = await activate();
    const beating = await activate().catch(async () => {
      // One approved request per activation: ask again for the second session.
      return activate();
    });
    b.clock.advance(20_000);
    await upload(beating, await chunk(beating, 0, `${HEADER}`));
    b.clock.advance(11_000);
    expect(await endLapsedRecordings(b.ctx)).toBe(1);
    const view = (id: string) => s.admin.call<SessionView>('GET', `/v1/sessions/${id}`);
    expect(await view(silent.info.id)).toMatchObject({ state: 'ended', end_reason: 'recording_lapsed' });
    expect((await view(beating.info.id)).state).toBe('active');
    // An empty chunk is a heartbeat: nothing stored, the lapse starts again.
    b.clock.advance(25_000);
    await upload(beating, await chunk(beating, 1, ''));
    b.clock.advance(25_000);
    expect(await endLapsedRecordings(b.ctx)).toBe(0);
    b.clock.advance(10_000);
    expect(await endLapsedRecordings(b.ctx)).toBe(1);
    expect(await view(beating.info.id)).toMatchObject({ state: 'ended', end_reason: 'recording_lapsed' });
    // The tail the recorder wrote while its command was stopped is still taken, for a minute.
    await upload(beating, await chunk(beating, 1, '[1,"o","stopped\\r\\n"]\n', { final: true }));
    expect((await recording(beating.info.id)).complete).toBe(true);
    expect((await verify()).ok).toBe(true);
  });

  it('the summary the broker keeps of a recording is checked too: rewritten or deleted, audit verify names it', async () => {
    const session = await recordedSession();
    const id = session.info.id;
    const row = await store.db
      .selectFrom('recordings')
      .selectAll()
      .where('session_id', '=', id)
      .executeTakeFirstOrThrow();
    // Marked complete with another digest, as if a different recording had been made.
    await store.db
      .updateTable('recordings')
      .set({ digest: 'f'.repeat(64), chunks: 7 })
      .where('session_id', '=', id)
      .execute();
    const edited = await verify();
    expect(edited).toMatchObject({ ok: false, first_bad: { fault: 'recording_edited' } });
    expect(edited.first_bad!.message).toContain(`the recording of session ${id}`);
    // What GET serves says so as well.
    expect((await recording(id)).intact).toBe(false);
    await store.db
      .updateTable('recordings')
      .set({ digest: row.digest, chunks: row.chunks })
      .where('session_id', '=', id)
      .execute();
    expect((await verify()).ok).toBe(true);
    expect((await recording(id)).intact).toBe(true);
    // Gone with all its chunks, as if the session had never been required to run recorded.
    await store.db.deleteFrom('recording_chunks').where('session_id', '=', id).execute();
    await store.db.deleteFrom('recordings').where('session_id', '=', id).execute();
    const gone = await verify();
    expect(gone).toMatchObject({ ok: false, first_bad: { fault: 'recording_missing' } });
    expect(gone.first_bad!.message).toContain(id);
  });

  it('closes every way to run unrecorded: no heartbeat before the header, the final chunk ends the session, the size limit ends it too', async () => {
    const session = await activate();
    // Heartbeats alone (no header ever) would keep the session from lapsing with nothing recorded.
    expect((await refusal(upload(session, await chunk(session, 0, '')))).code).toBe('invalid_request');
    // The final chunk closes the recording; the session ends with it rather than run unwatched.
    await upload(session, await chunk(session, 0, HEADER, { final: true }));
    expect(await s.admin.call<SessionView>('GET', `/v1/sessions/${session.info.id}`)).toMatchObject({
      state: 'ended',
      end_reason: 'completed',
    });
    expect((await refusal(upload(session, await chunk(session, 1, '[1,"o","x"]\n')))).code).toBe(
      'recording_complete',
    );

    // An event dated past any end the session could have is refused (it would also overflow).
    const late = await activate();
    expect((await refusal(upload(late, await chunk(late, 0, `${HEADER}[1e13,"o","x"]\n`)))).code).toBe(
      'invalid_request',
    );
    // The last chunk sent again, its answer lost on the way: taken once, answered again.
    const first = await chunk(late, 0, `${HEADER}[0.5,"o","a"]\n`);
    const taken = await upload(late, first);
    expect(await upload(late, first)).toEqual(taken);
    expect((await recording(late.info.id)).chunks).toBe(1);

    // Past the size limit the recording can take nothing more, so the session cannot go on.
    const big = `[1,"o","${'x'.repeat(3000)}"]\n`;
    for (let seq = 1; ; seq++) {
      const answer = await upload(late, await chunk(late, seq, big)).catch((err: unknown) => err);
      if (answer instanceof Error) {
        expect((answer as { code?: string }).code).toBe('recording_too_large');
        break;
      }
      expect(seq).toBeLessThan(100);
    }
    expect(await s.admin.call<SessionView>('GET', `/v1/sessions/${late.info.id}`)).toMatchObject({
      state: 'ended',
      end_reason: 'recording_lapsed',
    });
    expect((await verify()).ok).toBe(true);
  });
});
