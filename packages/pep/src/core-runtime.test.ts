import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The decision path must run on any runtime with WebCrypto: every module `core.ts` reaches at
// run time uses WebCrypto (`globalThis.crypto`) and web APIs only — no `node:*` import, no
// `Buffer` or `process`. Node-only parts (the revocation follower over node:http, the adapters,
// PEP-issued nonces, createEnforcer) are reached from `index.ts` only.

const SRC = dirname(fileURLToPath(import.meta.url));

/** The modules the brief names as the core: they must stay reachable from core.ts. */
const REQUIRED_CORE = [
  'access-token.ts',
  'decision.ts',
  'dpop.ts',
  'entitlement.ts',
  'events.ts',
  'jwks.ts',
  'revocation-mirror.ts',
];

interface ModuleScan {
  /** Every `from '…'` / `import '…'` specifier, type-only or not. */
  specifiers: string[];
  /** Relative imports that exist at run time (not `import type` / `export type`). */
  runtimeRelatives: string[];
  /** Node globals used in code (comments stripped). */
  nodeGlobals: string[];
}

function scan(file: string): ModuleScan {
  const text = readFileSync(join(SRC, file), 'utf8');
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specifiers: string[] = [];
  const runtimeRelatives: string[] = [];
  const statement =
    /(?:^|\n)\s*(import|export)\s+(type\s+)?[^;]*?\bfrom\s+'([^']+)'|(?:^|\n)\s*import\s+'([^']+)'/g;
  for (const m of code.matchAll(statement)) {
    const specifier = (m[3] ?? m[4])!;
    specifiers.push(specifier);
    if (specifier.startsWith('.') && m[2] === undefined) runtimeRelatives.push(specifier);
  }
  for (const m of code.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) {
    specifiers.push(m[1]!);
    if (m[1]!.startsWith('.')) runtimeRelatives.push(m[1]!);
  }
  const nodeGlobals = [
    ...new Set(
      [...code.matchAll(/\b(Buffer|process|setImmediate|__dirname|require)\b\s*[.(]/g)].map((m) => m[1]!),
    ),
  ];
  return { specifiers, runtimeRelatives, nodeGlobals };
}

/** The modules reachable at run time from `entries`, following relative imports. */
function closure(entries: string[]): Map<string, ModuleScan> {
  const seen = new Map<string, ModuleScan>();
  const pending = [...entries];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    const result = scan(file);
    seen.set(file, result);
    for (const specifier of result.runtimeRelatives) {
      pending.push(relative(SRC, join(SRC, dirname(file), specifier.replace(/\.js$/, '.ts'))));
    }
  }
  return seen;
}

describe('the PEP core runs on any runtime with WebCrypto', () => {
  // decision.ts builds the enforcer's answers; core.ts exports only its types, but it is part of
  // the decision path all the same.
  const core = closure(['core.ts', 'decision.ts']);

  it('reaches every core module', () => {
    expect([...core.keys()]).toEqual(expect.arrayContaining(REQUIRED_CORE));
  });

  it('imports nothing from node:* in any core module', () => {
    const offending = [...core]
      .flatMap(([file, { specifiers }]) =>
        specifiers.filter((s) => s.startsWith('node:')).map((s) => `${file} imports ${s}`),
      )
      .sort();
    expect(offending, `core modules with node:* imports:\n${offending.join('\n')}`).toEqual([]);
  });

  it('uses no Node globals (Buffer, process, …) in any core module', () => {
    const offending = [...core]
      .flatMap(([file, { nodeGlobals }]) => nodeGlobals.map((g) => `${file} uses ${g}`))
      .sort();
    expect(offending, `core modules using Node globals:\n${offending.join('\n')}`).toEqual([]);
  });

  it('reaches Node through @tether-broker/protocol only where known', () => {
    // The status-list codec (snapshots carry compressed lists) and isLoopbackHost are Node's
    // today; Deno, Bun and Workers' nodejs_compat provide both. No other may join them.
    const protocol = join(SRC, '../../protocol/src');
    const nodeImports = readdirSync(protocol)
      .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
      .flatMap((file) =>
        scan(relative(SRC, join(protocol, file)))
          .specifiers.filter((s) => s.startsWith('node:'))
          .map((s) => `${file} imports ${s}`),
      )
      .sort();
    expect(nodeImports).toEqual([
      'status-list.ts imports node:buffer',
      'status-list.ts imports node:zlib',
      'transport.ts imports node:net',
    ]);
  });

  it('catches a node:* import (the scanner itself works)', () => {
    expect(scan('revocation-follower.ts').specifiers).toContain('node:http');
    expect(scan('adapters/node.ts').specifiers).toContain('node:http');
  });
});
