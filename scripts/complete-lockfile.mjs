#!/usr/bin/env node
// Adds to package-lock.json the platform-specific optional packages (other OSes and CPUs) that
// npm left out because this machine's registry does not serve them. `npm ci` insists that every
// optional dependency has an entry; an entry whose os/cpu/libc do not match is skipped at
// install time and never fetched. Run after any change to dependencies: `npm run lock:complete`.
import { readFileSync, writeFileSync } from 'node:fs';

const OS = new Set([
  'android',
  'darwin',
  'linux',
  'win32',
  'freebsd',
  'openbsd',
  'netbsd',
  'sunos',
  'aix',
  'openharmony',
]);
const CPU = new Set([
  'arm',
  'arm64',
  'x64',
  'ia32',
  'loong64',
  'ppc64',
  'riscv64',
  's390x',
  'mips64el',
  'wasm32',
]);

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const packages = lock.packages;
const added = [];
for (const [key, meta] of Object.entries(packages)) {
  for (const [name, range] of Object.entries(meta.optionalDependencies ?? {})) {
    const hoisted = `node_modules/${name}`;
    const nested = key ? `${key}/node_modules/${name}` : hoisted;
    if (packages[hoisted] || packages[nested]) continue;
    const parts = name.split('/').at(-1).split(/[-_]/);
    const os = parts.find((p) => OS.has(p));
    const cpu = parts.find((p) => CPU.has(p));
    if (!os || !cpu) {
      console.error(`left out (no platform in its name): ${name}`);
      continue;
    }
    const entry = { version: range.replace(/^[\^~=]/, ''), cpu: [cpu], optional: true, os: [os] };
    if (parts.includes('musl')) entry.libc = ['musl'];
    else if (parts.includes('gnu') || parts.includes('gnueabihf')) entry.libc = ['glibc'];
    if (meta.license) entry.license = meta.license;
    packages[hoisted] = entry;
    added.push(name);
  }
}
const sorted = Object.fromEntries(
  Object.keys(packages)
    .sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1))
    .map((k) => [k, packages[k]]),
);
lock.packages = sorted;
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: ${added.length} platform entries added`);
