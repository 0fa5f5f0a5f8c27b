import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ERROR_CATALOGUE,
  ERROR_CODES,
  type ErrorCode,
  isErrorCode,
  isTetherError,
  statusOf,
  TetherError,
} from './errors.js';
import { problemType, toProblem } from './problem.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOC_PATH = join(ROOT, 'docs/errors.md');

/** `### <code>` sections of docs/errors.md, with the status each one states. */
function documentedCodes(): Map<string, { status: number | undefined; body: string }> {
  const doc = readFileSync(DOC_PATH, 'utf8');
  const sections = new Map<string, { status: number | undefined; body: string }>();
  const headings = [...doc.matchAll(/^### (.+)$/gm)];
  headings.forEach((h, i) => {
    const code = h[1]!.trim();
    const body = doc.slice(h.index! + h[0].length, headings[i + 1]?.index ?? doc.length);
    expect(sections.has(code), `docs/errors.md documents ${code} twice`).toBe(false);
    const status = /^\*\*HTTP status:\*\* (\d{3})\b/m.exec(body)?.[1];
    sections.set(code, { status: status === undefined ? undefined : Number(status), body });
  });
  return sections;
}

/** Source files (no tests, no build output) under `dir`. */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => join(e.parentPath, e.name));
}

const PACKAGE_SOURCES = readdirSync(join(ROOT, 'packages'), { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .flatMap((e) => {
    try {
      return sourceFiles(join(ROOT, 'packages', e.name, 'src'));
    } catch {
      return [];
    }
  });
const BROKER_SOURCES = sourceFiles(join(ROOT, 'packages/broker/src'));

/** Every `new TetherError('<code>'` in `files`, with where it is. */
function thrownCodes(files: string[]): { code: string; where: string }[] {
  return files.flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/new TetherError\(\s*'([^']*)'/g)].map((m) => ({
      code: m[1]!,
      where: relative(ROOT, file),
    })),
  );
}

/**
 * Codes that no `new TetherError(…)` produces, and why each is still in the catalogue. A code that
 * becomes dead, or one that starts being thrown, fails the test until this list says so.
 * `producedIn` names the file that produces it some other way (checked), or null when nothing does.
 */
const NOT_THROWN: Record<string, { producedIn: string | null; reason: string; mayAlsoBeThrown?: true }> = {
  unsupported_media_type: {
    producedIn: 'packages/broker/src/http/error-handler.ts',
    reason: "Fastify's content-type parser errors are mapped onto it",
  },
  payload_too_large: {
    producedIn: 'packages/broker/src/http/error-handler.ts',
    reason: "Fastify's body-limit error is mapped onto it (and a recording chunk over its limit throws it)",
    mayAlsoBeThrown: true,
  },
  route_not_found: {
    producedIn: 'packages/broker/src/http/error-handler.ts',
    reason: 'the not-found handler answers it for any unmatched route',
  },
  internal_error: {
    producedIn: 'packages/broker/src/http/error-handler.ts',
    reason: 'the error handler answers it for anything it does not recognise',
    // A broken invariant may also be thrown as internal_error on purpose; either way it is live.
    mayAlsoBeThrown: true,
  },
  upstream_unavailable: {
    producedIn: 'packages/cli/src/gateway/server.ts',
    reason: 'the gateway answers it as a problem when the upstream fails; nothing throws it',
  },
  insufficient_scope: {
    producedIn: 'packages/pep/src/decision.ts',
    reason: 'a PEP denial (403), answered by the enforcer as a decision, never thrown',
  },
  revocation_state_stale: {
    producedIn: 'packages/pep/src/decision.ts',
    reason: 'a PEP denial (503) when its mirror is past its staleness budget, answered, never thrown',
  },
  method_not_allowed: {
    producedIn: null,
    reason: 'reserved: Fastify answers a known path with an unknown method as route_not_found (404)',
  },
};

/**
 * `new TetherError(<expression>, …)` sites, by file, with the codes each can produce and why the
 * code is not a literal there. A new dynamic site fails the test until it is listed here.
 */
const DYNAMIC_SITES: Record<string, { codes: ErrorCode[]; reason: string }> = {
  'packages/broker/src/http/routes/sessions.ts': {
    codes: ['invalid_dpop_proof', 'use_dpop_nonce'],
    reason: "re-throws a @tether-broker/pep DpopError, whose code is typed as the pep's DpopErrorCode",
  },
  'packages/broker/src/http/routes/connectors.ts': {
    codes: ['invalid_dpop_proof', 'use_dpop_nonce'],
    reason: "re-throws the DpopError of the session key's proof when credentials are collected",
  },
  'packages/broker/src/auth/authenticate-caller.ts': {
    codes: ['invalid_dpop_proof', 'use_dpop_nonce'],
    reason: "re-throws the DpopError of a DPoP-bound API token's proof with its own code",
  },
};

/** Files with a `new TetherError(` whose first argument is not a string literal. */
function dynamicSites(files: string[]): string[] {
  return files
    .filter((file) => /new TetherError\(\s*[^'\s]/.test(readFileSync(file, 'utf8')))
    .map((file) => relative(ROOT, file));
}

describe('the error catalogue', () => {
  it('gives every code a client (4xx) or server (5xx) status and a title', () => {
    for (const code of ERROR_CODES) {
      const { status, title } = ERROR_CATALOGUE[code];
      expect(Number.isInteger(status) && status >= 400 && status <= 599, `${code}: ${status}`).toBe(true);
      expect(title.length, code).toBeGreaterThan(0);
    }
  });

  it('uses 5xx only for the store, an enforcement point that cannot decide or forward, and the last resort', () => {
    const serverSide = ERROR_CODES.filter((c) => statusOf(c) >= 500).sort();
    expect(serverSide).toEqual([
      'internal_error',
      'revocation_state_stale',
      'store_schema_too_new',
      'store_unavailable',
      'upstream_unavailable',
    ]);
  });

  it('names codes in lower snake_case, so they are safe as URL fragments and switch labels', () => {
    for (const code of ERROR_CODES) expect(code).toMatch(/^[a-z]+(_[a-z]+)*$/);
  });

  it('gives a TetherError the status and title of its code, and a problem its documented type', () => {
    const err = new TetherError('duplicate_review');
    expect(err.status).toBe(409);
    expect(err.detail).toBe(ERROR_CATALOGUE.duplicate_review.title);
    expect(toProblem('duplicate_review', 'again')).toMatchObject({
      type: 'https://tether.dev/errors#duplicate_review',
      status: 409,
      code: 'duplicate_review',
      detail: 'again',
    });
    expect(problemType('not_found')).toMatch(/#not_found$/);
  });

  it('keeps a cause out of the client-visible detail', () => {
    const err = new TetherError('internal_error', undefined, { cause: new Error('password=hunter2') });
    expect(toProblem(err.code, err.detail, err.extra).detail).not.toContain('hunter2');
  });

  it('does not let extra fields override the code, status or type', () => {
    const p = toProblem('forbidden', 'no', { code: 'internal_error', status: 200, type: 'x', keep: 1 });
    expect(p).toMatchObject({ code: 'forbidden', status: 403, type: problemType('forbidden'), keep: 1 });
  });

  it('recognises only catalogue codes', () => {
    expect(isErrorCode('not_found')).toBe(true);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode('NOT_FOUND')).toBe(false);
    expect(isErrorCode(404)).toBe(false);
  });
});

describe('docs/errors.md', () => {
  const documented = documentedCodes();

  it('documents every code with the same HTTP status as the catalogue', () => {
    const problems: string[] = [];
    for (const code of ERROR_CODES) {
      const section = documented.get(code);
      if (!section) problems.push(`${code}: no "### ${code}" section`);
      else if (section.status !== statusOf(code))
        problems.push(`${code}: documented status ${section.status}, catalogue says ${statusOf(code)}`);
    }
    expect(problems).toEqual([]);
  });

  it('names no code that does not exist', () => {
    expect([...documented.keys()].filter((c) => !isErrorCode(c))).toEqual([]);
  });

  it('says for every code what it means and what the client should do', () => {
    for (const [code, { body }] of documented) {
      expect(body, code).toMatch(/^\*\*Meaning:\*\* \S/m);
      expect(body, code).toMatch(/^\*\*What to do:\*\* \S/m);
    }
  });
});

describe('codes thrown in the source', () => {
  const thrown = thrownCodes(PACKAGE_SOURCES);

  it('finds the broker throwing errors at all (the scan works)', () => {
    expect(thrownCodes(BROKER_SOURCES).length).toBeGreaterThan(20);
  });

  it('throws only catalogue codes', () => {
    expect(thrown.filter((t) => !isErrorCode(t.code))).toEqual([]);
  });

  it('names the code as a literal, except at the listed dynamic sites', () => {
    expect(dynamicSites(PACKAGE_SOURCES).sort()).toEqual(Object.keys(DYNAMIC_SITES).sort());
    for (const { codes } of Object.values(DYNAMIC_SITES)) {
      expect(codes.filter((c) => !isErrorCode(c))).toEqual([]);
    }
  });

  it('leaves unthrown only the codes the allow-list explains', () => {
    const used = new Set([
      ...thrown.map((t) => t.code),
      ...Object.values(DYNAMIC_SITES).flatMap((site) => site.codes),
    ]);
    const neverThrown = ERROR_CODES.filter((c) => !used.has(c)).sort();
    const explained = Object.keys(NOT_THROWN).filter(
      (c) => !NOT_THROWN[c]!.mayAlsoBeThrown || neverThrown.includes(c as ErrorCode),
    );
    expect(neverThrown).toEqual(explained.sort());
  });

  it('checks each allow-list reason: produced where it says, or nowhere at all', () => {
    for (const [code, { producedIn }] of Object.entries(NOT_THROWN) as [
      ErrorCode,
      (typeof NOT_THROWN)[string],
    ][]) {
      const mentions = PACKAGE_SOURCES.filter(
        (f) =>
          !f.endsWith(join('protocol', 'src', 'errors.ts')) && readFileSync(f, 'utf8').includes(`'${code}'`),
      ).map((f) => relative(ROOT, f));
      if (producedIn === null) expect(mentions, code).toEqual([]);
      else expect(mentions, code).toContain(producedIn);
    }
  });
});

describe('isTetherError', () => {
  it("recognises another copy of the package's errors, and nothing that only looks like one", async () => {
    // A second instance of this module, as a bundled CLI holds beside the broker it loads.
    const other = (await import(
      /* @vite-ignore */ `./errors.js?copy=${Date.now()}`
    )) as typeof import('./errors.js');
    expect(other.TetherError).not.toBe(TetherError);
    const foreign = new other.TetherError('store_unavailable', 'down');
    expect(foreign instanceof TetherError).toBe(false);
    expect(isTetherError(foreign)).toBe(true);
    expect(other.isTetherError(new TetherError('store_unavailable'))).toBe(true);
    // The same fields, or the same name, make no TetherError.
    const lookalike = Object.assign(new Error('x'), {
      name: 'TetherError',
      code: 'store_unavailable',
      status: 503,
    });
    expect(isTetherError(lookalike)).toBe(false);
    expect(isTetherError({ code: 'store_unavailable' })).toBe(false);
    expect(isTetherError(undefined)).toBe(false);
  });
});
