/**
 * Import boundaries, read from the sources (no compiler): a scanner collects every
 * `import … from '…'`, `import '…'`, `export … from '…'` and `import('…')` specifier of
 * packages/*\/src/**\/*.ts, and the rules below are checked over them. Unit tests beside the
 * code (`*.test.ts`) are left out: they may reach across layers to set a scene up.
 *
 * The broker's top-level folders sit in three layers (see packages/broker/src/README.md):
 * shared building blocks, use-case folders over them, and entry points over both.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGES = join(ROOT, 'packages');
const BROKER_SRC = join(PACKAGES, 'broker', 'src');

/** Files directly in packages/broker/src (broker.ts, index.ts, transport.ts). */
const ROOT_FILES = '(root)';

const SHARED = [
  'domain',
  'config',
  'net',
  'store',
  'policy',
  'tokens',
  'audit',
  'revocation',
  'ssf',
  'auth',
  'core',
  'evaluation',
] as const;
const USE_CASES = [
  'requests',
  'sessions',
  'records',
  'tickets',
  'signals',
  'enforcement',
  'ssf-streams',
  'connectors',
  'recordings',
  'authzen',
  'notifications',
  'console',
  'tenancy',
] as const;
const ENTRY = ['http', 'oauth', 'operations', 'demo', ROOT_FILES] as const;

/** Libraries `domain` may use besides the protocol package: pure, no I/O. */
const DOMAIN_LIBRARIES = ['@tether-broker/protocol', 'node:crypto', 're2js'];

interface Import {
  /** The importing file, relative to the repository root. */
  from: string;
  specifier: string;
  /** The imported file (absolute, `.ts`) for a relative specifier; otherwise undefined. */
  target?: string;
}

// `import x from`, `import type { a,\n b } from`, `export * from`, `export { a } from`,
// `import 'x'` (side effect), and `import('x')`. The clause before `from` may span lines.
const SPECIFIER =
  /\b(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]*?\bfrom\s*)?['"]([^'"\n]+)['"]|\bimport\s*\(\s*['"]([^'"\n]+)['"]\s*\)/g;
// Block comments that open a line (TSDoc), and whole-line `//` comments.
const COMMENTS = /^\s*\/\*[\s\S]*?\*\/|^\s*\/\/.*$/gm;

/** The module specifiers `source` imports or re-exports. */
function specifiersOf(source: string): string[] {
  const code = source.replace(COMMENTS, '');
  return [...code.matchAll(SPECIFIER)].map((m) => (m[1] ?? m[2]) as string);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

function importsOf(file: string): Import[] {
  return specifiersOf(readFileSync(file, 'utf8')).map((specifier) => ({
    from: relative(ROOT, file),
    specifier,
    target: specifier.startsWith('.') ? resolve(dirname(file), specifier).replace(/\.js$/, '.ts') : undefined,
  }));
}

function importsOfPackage(name: string): Import[] {
  return sourceFiles(join(PACKAGES, name, 'src')).flatMap(importsOf);
}

/** The broker's top-level folder a file lies in, or ROOT_FILES. */
function folderOf(file: string): string {
  const parts = relative(BROKER_SRC, file).split(sep);
  return parts.length === 1 ? ROOT_FILES : (parts[0] as string);
}

function isInside(file: string, dir: string): boolean {
  const rel = relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep);
}

/** Folder → folder edges of the broker, each with the first import that makes it. */
function folderEdges(imports: readonly Import[]): Map<string, Map<string, Import>> {
  const edges = new Map<string, Map<string, Import>>();
  for (const imp of imports) {
    if (!imp.target || !isInside(imp.target, BROKER_SRC)) continue;
    const a = folderOf(join(ROOT, imp.from));
    const b = folderOf(imp.target);
    if (a === b) continue;
    const out = edges.get(a) ?? new Map<string, Import>();
    if (!out.has(b)) out.set(b, imp);
    edges.set(a, out);
  }
  return edges;
}

/** Strongly connected components with more than one node (Tarjan). */
function cyclesOf(graph: ReadonlyMap<string, Iterable<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) components.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return components;
}

/** A path `a → … → a` inside one component, for the failure message. */
function cyclePath(graph: ReadonlyMap<string, Iterable<string>>, component: readonly string[]): string[] {
  const inside = new Set(component);
  const start = component[0] as string;
  const seen = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift() as string;
    for (const w of graph.get(v) ?? []) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const between: string[] = [];
        for (let at = v; at !== start; at = seen.get(at) as string) between.unshift(at);
        return [start, ...between, start];
      }
      if (!seen.has(w)) {
        seen.set(w, v);
        queue.push(w);
      }
    }
  }
  return [...component];
}

const show = (imps: readonly Import[]) => imps.map((i) => `${i.from} imports '${i.specifier}'`);

const broker = importsOfPackage('broker');
const brokerFolders = readdirSync(BROKER_SRC, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name);

/** Imports whose importer lies in one of `from` and whose target lies in one of `to`. */
function crossing(from: readonly string[], to: (folder: string) => boolean): Import[] {
  return broker.filter((imp) => {
    if (!imp.target || !isInside(imp.target, BROKER_SRC)) return false;
    const a = folderOf(join(ROOT, imp.from));
    const b = folderOf(imp.target);
    return a !== b && from.includes(a) && to(b);
  });
}

describe('the import scanner', () => {
  it('finds multi-line, type-only, re-exported and dynamic imports, not commented ones', () => {
    const source = [
      '/** import { nothing } from "./commented.js"; */',
      "import {\n  a,\n  type B,\n} from './multi.js';",
      "import type { C } from './types.js';",
      "export { d } from './again.js';",
      "export * from './all.js';",
      "import './effect.js';",
      "const e = await import('./dynamic.js');",
      "// import { f } from './line-comment.js';",
    ].join('\n');
    expect(specifiersOf(source)).toEqual([
      './multi.js',
      './types.js',
      './again.js',
      './all.js',
      './effect.js',
      './dynamic.js',
    ]);
  });

  it('sees real imports: the core imports the domain, and the folders have edges', () => {
    const context = broker.filter((i) => i.from.endsWith(join('broker', 'src', 'core', 'context.ts')));
    expect(context.some((i) => i.target === join(BROKER_SRC, 'domain', 'clock.ts'))).toBe(true);
    expect(folderEdges(broker).get('core')?.has('domain')).toBe(true);
    expect(importsOfPackage('pep').length).toBeGreaterThan(0);
  });

  it('finds a cycle when there is one', () => {
    const graph = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a', 'd']],
      ['d', []],
    ]);
    const [cycle, ...rest] = cyclesOf(graph);
    expect(rest).toEqual([]);
    expect(cyclePath(graph, cycle ?? [])).toEqual(['a', 'b', 'c', 'a']);
  });
});

describe('broker boundaries', () => {
  it('places every top-level folder of the broker in a layer', () => {
    const placed = new Set<string>([...SHARED, ...USE_CASES, ...ENTRY]);
    expect(brokerFolders.filter((f) => !placed.has(f))).toEqual([]);
  });

  it('domain imports only domain, the protocol package and pure libraries', () => {
    const domain = join(BROKER_SRC, 'domain');
    const outside = broker.filter((imp) => {
      if (!isInside(join(ROOT, imp.from), domain)) return false;
      if (imp.target) return !isInside(imp.target, domain);
      return !DOMAIN_LIBRARIES.includes(imp.specifier);
    });
    expect(show(outside)).toEqual([]);
  });

  it('store imports only store and domain', () => {
    expect(show(crossing(['store'], (b) => b !== 'domain'))).toEqual([]);
  });

  it('shared folders (the core among them) never import a use-case folder or an entry point', () => {
    const above = new Set<string>([...USE_CASES, ...ENTRY]);
    expect(show(crossing(SHARED, (b) => above.has(b)))).toEqual([]);
  });

  it('use-case folders do not import each other, nor entry points', () => {
    const above = new Set<string>([...USE_CASES, ...ENTRY]);
    expect(show(crossing(USE_CASES, (b) => above.has(b)))).toEqual([]);
  });

  it('has no cycle among its top-level folders', () => {
    const edges = folderEdges(broker);
    const graph = new Map([...edges].map(([a, out]) => [a, [...out.keys()]]));
    const cycles = cyclesOf(graph).map((component) => {
      const path = cyclePath(graph, component);
      const hops = path.slice(1).map((b, i) => {
        const imp = edges.get(path[i] as string)?.get(b) as Import;
        return `  ${path[i]} → ${b}: ${imp.from} imports '${imp.specifier}'`;
      });
      return [`${path.join(' → ')} (component: ${component.join(', ')})`, ...hops].join('\n');
    });
    expect(cycles).toEqual([]);
  });
});

describe('module cycles', () => {
  // Type-only imports count too: a cycle of types still ties two modules into one concept.
  for (const name of ['protocol', 'pep', 'client', 'broker', 'cli']) {
    it(`${name} has no cycle among its files`, () => {
      const graph = new Map<string, string[]>();
      for (const imp of importsOfPackage(name)) {
        if (!imp.target) continue;
        const from = join(ROOT, imp.from);
        graph.set(from, [...(graph.get(from) ?? []), imp.target]);
      }
      const cycles = cyclesOf(graph).map((component) =>
        cyclePath(graph, component)
          .map((file) => relative(ROOT, file))
          .join(' → '),
      );
      expect(cycles).toEqual([]);
    });
  }
});

describe('package boundaries', () => {
  for (const name of ['pep', 'client']) {
    it(`${name} never imports the broker`, () => {
      const brokerDir = join(PACKAGES, 'broker');
      const reaching = importsOfPackage(name).filter(
        (imp) =>
          imp.specifier === '@tether-broker/broker' ||
          imp.specifier.startsWith('@tether-broker/broker/') ||
          (imp.target !== undefined && isInside(imp.target, brokerDir)),
      );
      expect(show(reaching)).toEqual([]);
    });
  }
});
