// A fault trial: the disk under a SQLite store fills up. The store's directory is a small
// filesystem of its own (tmpfs, or a loop-mounted ext4 image), and while workers run session
// lifecycles a filler file takes every free byte of it. While it is full every call must answer
// 2xx or 503 (never another 5xx), `/readyz` must say 503 and the broker must stay up; once the
// filler is deleted `/readyz` must come back to 200 and lifecycles must succeed again. Then
// nothing the broker acknowledged may be missing, the audit chain must verify, and SQLite's own
// `PRAGMA integrity_check` must answer `ok` on the database the broker left behind.
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmdirSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { BenchTenant } from '../bench/lib/broker.mjs';
import { BoundSession, BrokerClient } from '../packages/client/dist/index.js';
import { FaultBroker } from './lib/fault-broker.mjs';
import { audit, Ledger } from './lib/ledger.mjs';

/** Session length: longer than a trial, so no session is meant to expire inside one. */
const SESSION_SECONDS = 300;

/** Mount points carry the runner's pid, so that a leftover is found (and only ours). */
const MOUNT_PREFIX = `tether-diskfull-${process.pid}-`;

function run(command, args) {
  return execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

function reason(err) {
  return (err?.stderr?.toString().trim() || err?.message || String(err)).split('\n')[0];
}

/**
 * A fresh filesystem of `sizeMiB` mounted on a new directory: tmpfs if the kernel lets us
 * (root with CAP_SYS_ADMIN), else an ext4 image on a loop device. Throws, saying why, when
 * neither can be mounted: the trial must not pass without a disk that really fills.
 */
function mountSmallFilesystem(sizeMiB, prefer) {
  const dir = mkdtempSync(join(tmpdir(), MOUNT_PREFIX));
  const tried = [];
  if (prefer !== 'ext4') {
    try {
      run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', dir]);
      return { dir, kind: 'tmpfs' };
    } catch (err) {
      tried.push(`tmpfs: ${reason(err)}`);
    }
  }
  const image = `${dir}.img`;
  try {
    // Sparse: the image takes space on the host only as the store fills it.
    closeSync(openSync(image, 'w'));
    truncateSync(image, sizeMiB * 2 ** 20);
    // No blocks reserved for root: the broker runs as root here, and would write into them.
    run('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
    run('mount', ['-o', 'loop', image, dir]);
    return { dir, kind: 'ext4 on a loop device', image };
  } catch (err) {
    tried.push(`loop-mounted ext4: ${reason(err)}`);
    rmSync(image, { force: true });
  }
  rmdirSync(dir);
  throw new Error(
    `cannot mount a small filesystem to fill (${tried.join('; ')}); the disk-full trial needs root with CAP_SYS_ADMIN`,
  );
}

/** Unmounts (lazily if something still holds a file open) and removes the mount point and image. */
function unmount({ dir, image }) {
  try {
    run('umount', [dir]);
  } catch {
    try {
      run('umount', ['-l', dir]);
    } catch {
      // Not mounted (any more).
    }
  }
  rmSync(dir, { recursive: true, force: true });
  if (image) rmSync(image, { force: true });
}

/** Unmounts what a trial of this process left mounted (a test's last resort after a failure). */
export function unmountLeftovers() {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1])
    .filter((point) => point?.includes(MOUNT_PREFIX));
  for (const dir of mounts) unmount({ dir, image: existsSync(`${dir}.img`) ? `${dir}.img` : undefined });
  return mounts;
}

/**
 * Takes every free byte of the filesystem with `path` (appending to it): big writes first, then
 * smaller ones down to a byte, each until ENOSPC; then gives `leave` bytes back. Called again,
 * it takes what was freed since.
 */
function fillUp(path, leave = 0) {
  const fd = openSync(path, 'a');
  try {
    for (const size of [1 << 20, 1 << 12, 1 << 9, 1]) {
      const chunk = Buffer.alloc(size, 0x5a);
      for (;;) {
        try {
          if (writeSync(fd, chunk) === 0) break;
        } catch (err) {
          if (err.code !== 'ENOSPC') throw err;
          break;
        }
      }
    }
    if (leave > 0) ftruncateSync(fd, Math.max(0, fstatSync(fd).size - leave));
  } finally {
    closeSync(fd);
  }
}

/** What a failed call was, as the ledger counts it: an HTTP status, `refused`, or `other`. */
function kindOf(err) {
  if (typeof err?.status === 'number') return String(err.status);
  const code = err?.cause?.code ?? err?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' ? 'refused' : 'other';
}

/**
 * What the workers and the chaos share: whether the disk is full right now, the calls' outcomes
 * while it was, and the first few answers that were neither 2xx nor 503 (to report them).
 */
class Tally {
  full = false;
  unavailableWhileFull = 0;
  okWhileFull = 0;
  /** Answers neither 2xx nor 5xx (4xx, connection refused, …): the ledger counts the 5xx. */
  otherAnswers = 0;
  /** Ends answered 409 after an earlier 503 for the same end: the 503 had done the work. */
  endedUnheard = 0;
  unexpected = [];

  failure(ledger, step, err) {
    const kind = kindOf(err);
    ledger.failed(kind);
    if (kind === '503' && this.full) this.unavailableWhileFull++;
    if (!/^5\d\d$/.test(kind)) this.otherAnswers++;
    if (kind !== '503' && this.unexpected.length < 10)
      this.unexpected.push({
        step,
        full: this.full,
        status: err?.status ?? kind,
        code: err?.code,
        detail: err?.detail ?? err?.message,
        ...(err?.body?.instance ? { instance: err.body.instance } : {}),
      });
  }

  success() {
    if (this.full) this.okWhileFull++;
  }
}

/** Ends a session, retrying until the broker answers: 2xx is acknowledged; 409 means it ended unheard. */
async function endSession(client, id, ledger, tally, stopped) {
  let refusedBefore = false;
  while (!stopped()) {
    try {
      await client.call('POST', `/v1/sessions/${id}/end`, {});
      tally.success();
      ledger.ended.add(id);
      return;
    } catch (err) {
      if (err?.status === 409) {
        if (refusedBefore) tally.endedUnheard++;
        return;
      }
      refusedBefore ||= err?.status === 503;
      tally.failure(ledger, 'end', err);
      await sleep(100);
    }
  }
}

/** Session lifecycles (request → auto-approval → activation → end) until the trial is over. */
async function worker(pipeline, ledger, tally, state) {
  const stopped = () => state.finished;
  while (!stopped()) {
    let session;
    let step = 'request';
    try {
      const request = await pipeline.call('POST', '/v1/requests', {
        privilege: 'bench',
        justification: 'disk-full trial',
        duration: SESSION_SECONDS,
      });
      tally.success();
      step = 'activate';
      session = await BoundSession.activate(pipeline, request.id);
      tally.success();
      ledger.activated.set(session.info.id, session.info.hardExpiresAt);
    } catch (err) {
      // Cut short by the full disk: abandoned (an unactivated request, or nothing at all).
      tally.failure(ledger, step, err);
      await sleep(100);
      continue;
    }
    // An end is retried past the trial's end (it must be heard), until the trial gives up on it.
    await endSession(pipeline, session.info.id, ledger, tally, () => state.givenUp);
    state.completed++;
  }
}

/** `/readyz`: its status, or 0 when nothing answered. */
async function readyz(broker) {
  try {
    const response = await fetch(`${broker.publicUrl}/readyz`, { signal: AbortSignal.timeout(3000) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

/** Waits until `done()`, or `withinMs`; answers whether it was `done()`. */
async function until(done, withinMs, everyMs = 50) {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (await done()) return true;
    await sleep(everyMs);
  }
  return done();
}

/**
 * SQLite's own verdict on the database file (`integrity_check`, then `foreign_key_check`),
 * opened read-only after the broker has closed it.
 */
function integrityOf(location) {
  const db = new Database(location, { readonly: true, fileMustExist: true });
  try {
    const verdict = db
      .pragma('integrity_check')
      .map((r) => r.integrity_check)
      .join('; ');
    if (verdict !== 'ok') return verdict;
    const orphans = db.pragma('foreign_key_check');
    return orphans.length === 0 ? 'ok' : `${orphans.length} foreign key violation(s)`;
  } finally {
    db.close();
  }
}

/**
 * @param {{ lifecycles: number, episodes?: number, workers?: number, sizeMiB?: number,
 *   fullMs?: number, slackKiB?: [number, number], becomeFullWithinMs?: number, recoverWithinMs?: number,
 *   filesystem?: 'tmpfs'|'ext4', name?: string }} options
 *   `lifecycles` are run in `episodes + 1` equal parts, with the disk full `fullMs` between them;
 *   each time it is filled but for a random `slackKiB[0]`–`slackKiB[1]` KiB, which the broker fills itself.
 */
export async function diskFullTrial({
  lifecycles,
  episodes = 1,
  workers = 2,
  sizeMiB = 32,
  fullMs = 2000,
  slackKiB = [32, 256],
  becomeFullWithinMs = 15_000,
  recoverWithinMs = 15_000,
  filesystem,
  name = 'disk full',
}) {
  const started = Date.now();
  const ledger = new Ledger();
  const tally = new Tally();
  let mount;
  const row = (fields) => ({
    name: `${name}${mount ? ` (${mount.kind})` : ''}`,
    store: 'sqlite',
    lifecycles: 0,
    faults: 0,
    activations: ledger.activated.size,
    ends: ledger.ended.size,
    failedCalls: Object.values(ledger.failures).reduce((a, b) => a + b, 0),
    serverErrors: ledger.serverErrors,
    lostActivations: 0,
    lostEnds: 0,
    missingEvents: 0,
    pastExpiry: 0,
    losses: 0,
    brokerDeaths: 0,
    auditVerified: false,
    unavailableWhileFull: tally.unavailableWhileFull,
    okWhileFull: tally.okWhileFull,
    otherAnswers: tally.otherAnswers,
    readyzWhileFull: { 503: 0, 200: 0, other: 0 },
    readyzRecovered: false,
    diskFull: 'not run',
    integrity: 'not run',
    seconds: Math.round((Date.now() - started) / 100) / 10,
    ...fields,
  });
  try {
    mount = mountSmallFilesystem(sizeMiB, filesystem);
  } catch (err) {
    // Loud, never vacuous: the row fails (`failing` in run.mjs) and says why.
    console.error(`disk-full trial: ${err.message}`);
    return row({ diskFull: `not run: ${err.message}`, notes: err.message });
  }
  let broker;
  try {
    broker = await FaultBroker.create({ dialect: 'sqlite', dataDir: mount.dir });
    const tenant = new BenchTenant({
      adminIdentity: broker.adminIdentity,
      publicUrl: broker.publicUrl,
      tenant: broker.tenant,
    });
    await tenant.grant('https://faults.example');
    const state = { completed: 0, finished: false, givenUp: false };
    const pipelines = [tenant.pipeline];
    for (let i = 1; i < workers; i++)
      pipelines.push(new BrokerClient({ identity: tenant.pipeline.identity }));
    const running = Promise.all(pipelines.map((p) => worker(p, ledger, tally, state)));

    const part = Math.max(1, Math.ceil(lifecycles / (episodes + 1)));
    const filler = join(mount.dir, 'filler');
    const readyzWhileFull = { 503: 0, 200: 0, other: 0 };
    const problems = [];
    let deaths = 0;
    let faults = 0;
    let recoveries = 0;
    const fullAfterMs = [];
    const slacks = [];
    const recoveredAfterMs = [];
    // The process must survive the full disk: a death is counted (and restarted once space is back).
    let dead = false;
    const watch = () => {
      if (!broker.alive && !dead) {
        dead = true;
        deaths++;
      }
    };
    const revive = async () => {
      if (!dead) return;
      await broker.restart();
      dead = false;
    };
    try {
      for (let episode = 0; episode <= episodes; episode++) {
        const goal = state.completed + part;
        if (!(await until(() => state.completed >= goal, 120_000))) {
          problems.push(`only ${state.completed} lifecycles completed before episode ${episode + 1}`);
          break;
        }
        if (episode === episodes) break;

        // Fill the disk but for a few random KiB: the broker's own writes take the last bytes, so
        // the write that meets the full disk is whichever came then (a lone insert, a transaction's
        // commit, the readiness probe), as in production, not always the first one after the fill.
        const slack = Math.floor((slackKiB[0] + Math.random() * (slackKiB[1] - slackKiB[0])) * 1024);
        slacks.push(Math.round(slack / 1024));
        fillUp(filler, slack);
        tally.full = true;
        const filledAt = Date.now();
        // SQLite may also commit into WAL space it already holds: full is when the broker says so.
        const sawFull = await until(
          async () => {
            watch();
            return (await readyz(broker)) === 503;
          },
          becomeFullWithinMs,
          100,
        );
        if (!sawFull) {
          problems.push(
            `episode ${episode + 1}: /readyz still not 503 ${becomeFullWithinMs} ms after the disk filled`,
          );
        } else {
          faults++;
          fullAfterMs.push(Date.now() - filledAt);
          const holdUntil = Date.now() + fullMs;
          while (Date.now() < holdUntil) {
            // Kept full: whatever is freed (the slack's last bytes, a file SQLite shrinks) is taken again.
            fillUp(filler);
            watch();
            const status = await readyz(broker);
            readyzWhileFull[status === 503 || status === 200 ? status : 'other']++;
            await sleep(100);
          }
        }

        // Space returns.
        unlinkSync(filler);
        tally.full = false;
        const freedAt = Date.now();
        await revive();
        if (await until(async () => (await readyz(broker)) === 200, recoverWithinMs, 100)) {
          recoveries++;
          recoveredAfterMs.push(Date.now() - freedAt);
        } else
          problems.push(`episode ${episode + 1}: /readyz not 200 ${recoverWithinMs} ms after space returned`);
      }
    } finally {
      state.finished = true;
      tally.full = false;
      rmSync(filler, { force: true });
      // Ends still unheard get a while more; the timer must not outlive the trial.
      const grace = new AbortController();
      await Promise.race([
        running,
        sleep(30_000, undefined, { signal: grace.signal }).catch(() => undefined),
      ]);
      grace.abort();
      state.givenUp = true;
      await running;
    }
    watch();
    await revive();

    // Let the sweeper run, then compare what was acknowledged with what the store holds.
    await sleep(1500);
    const losses = await audit(broker, ledger);
    const admin = new BrokerClient({ identity: broker.adminIdentity });
    const verify = await admin.call('GET', '/v1/audit/verify');
    // SQLite checks the file once the broker has closed it (and checkpointed its WAL).
    await broker.stop();
    const integrity = integrityOf(broker.location);

    if (readyzWhileFull[200] > 0 || readyzWhileFull.other > 0)
      problems.push(
        `/readyz answered ${readyzWhileFull[200]}×200, ${readyzWhileFull.other}×other while full`,
      );
    if (tally.otherAnswers > 0) problems.push(`${tally.otherAnswers} answer(s) neither 2xx nor 5xx`);
    if (faults === 0) problems.push('the disk was never full as the broker saw it');
    if (recoveries < episodes)
      problems.push(`/readyz came back to 200 after ${recoveries} of ${episodes} episodes`);
    const notes = [
      `${mount.kind}, ${sizeMiB} MiB, filled but for ${slacks.join(', ')} KiB`,
      `/readyz 503 after ${fullAfterMs.join(', ')} ms full, 200 after ${recoveredAfterMs.join(', ')} ms freed`,
      `${tally.okWhileFull} calls 2xx while full`,
      ...(tally.endedUnheard ? [`${tally.endedUnheard} end(s) 503 then 409 (done, unheard)`] : []),
      ...(tally.unexpected.length ? [`unexpected answers: ${JSON.stringify(tally.unexpected)}`] : []),
    ].join('; ');
    return row({
      lifecycles: state.completed,
      faults,
      ...losses,
      brokerDeaths: deaths,
      auditVerified: verify.ok === true,
      readyzWhileFull,
      readyzRecovered: recoveries === episodes && recoveries > 0,
      diskFull: problems.length === 0 ? 'ok' : problems.join('; '),
      integrity,
      notes,
    });
  } finally {
    await broker?.destroy().catch(() => undefined);
    unmount(mount);
  }
}
