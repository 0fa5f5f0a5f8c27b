import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readPolicySet, splitCedarPolicies } from './cedar-files.js';
import { CliError } from './errors.js';

const ids = (text: string, stem = 'base') => splitCedarPolicies(text, stem).map((e) => e.id);

describe('splitting a .cedar file into policies', () => {
  it('splits at each top-level `;` and names unannotated policies <stem>-<n>', () => {
    const text = 'permit(principal, action, resource);\nforbid(principal, action, resource);\n';
    expect(splitCedarPolicies(text, 'ops')).toEqual([
      { id: 'ops-1', text: 'permit(principal, action, resource);' },
      { id: 'ops-2', text: 'forbid(principal, action, resource);' },
    ]);
  });

  it('does not split at a `;` inside a string literal, escaped quotes included', () => {
    const text = [
      'permit(principal, action, resource) when { resource.name == "a;b" };',
      'permit(principal, action, resource) when { context.reason == "say \\"hi;\\" ;" };',
    ].join('\n');
    const entries = splitCedarPolicies(text, 'f');
    expect(entries).toHaveLength(2);
    expect(entries[0]!.text).toContain('"a;b"');
    expect(entries[1]!.text).toContain('"say \\"hi;\\" ;"');
  });

  it('does not split at a `;` inside a // comment, and keeps comments with their policy', () => {
    const text = [
      '// first; with a semicolon',
      'permit(principal, action, resource); // trailing; note',
      '// second',
      'forbid(principal, action, resource);',
    ].join('\n');
    const entries = splitCedarPolicies(text, 'f');
    expect(entries.map((e) => e.text)).toEqual([
      '// first; with a semicolon\npermit(principal, action, resource); // trailing; note',
      '// second\nforbid(principal, action, resource);',
    ]);
  });

  it('takes the id from @id("…"), also among other annotations, and numbers the rest by position', () => {
    const text = [
      '@id("ops-can-ask")',
      'permit(principal, action, resource);',
      'permit(principal, action, resource);',
      '@advice("see the runbook") @id( "deny-weekends" )',
      'forbid(principal, action, resource);',
    ].join('\n');
    expect(ids(text, 'main')).toEqual(['ops-can-ask', 'main-2', 'deny-weekends']);
  });

  it('is not fooled by @id( inside a string or a comment', () => {
    const text = [
      '// @id("commented-out")',
      '@advice("use @id(\\"x\\") to name it")',
      'permit(principal, action, resource) when { context.reason == "@id(\\"y\\")" };',
    ].join('\n');
    expect(ids(text, 'f')).toEqual(['f-1']);
  });

  it('keeps unterminated trailing text as an entry for the validator; ignores trailing comments and stray `;`', () => {
    expect(ids('permit(principal, action, resource);\n// the end\n', 'f')).toEqual(['f-1']);
    expect(ids('permit(principal, action, resource);;\n', 'f')).toEqual(['f-1']);
    const entries = splitCedarPolicies('permit(principal, action, resource);\npermit(principal', 'f');
    expect(entries.map((e) => e.text)).toEqual(['permit(principal, action, resource);', 'permit(principal']);
  });

  it('handles an unterminated string without losing text', () => {
    const entries = splitCedarPolicies('permit(principal, action, resource) when { x == "a;b };', 'f');
    expect(entries).toHaveLength(1);
    expect(entries[0]!.text).toBe('permit(principal, action, resource) when { x == "a;b };');
  });

  it('makes a file stem into an acceptable id', () => {
    expect(ids('permit(principal, action, resource);', 'my policies')).toEqual(['my-policies-1']);
  });
});

describe('reading a policy file or directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tether-cedar-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a directory's .cedar files in name order into one id → text map", () => {
    const folder = mkdtempSync(join(dir, 'set-'));
    writeFileSync(join(folder, 'b.cedar'), 'permit(principal, action, resource);');
    writeFileSync(join(folder, 'a.cedar'), '@id("first") permit(principal, action, resource);');
    writeFileSync(join(folder, 'notes.txt'), 'not cedar;');
    expect(Object.keys(readPolicySet(folder))).toEqual(['first', 'b-1']);
  });

  it('refuses the same id twice, naming both files', () => {
    const folder = mkdtempSync(join(dir, 'dup-'));
    writeFileSync(join(folder, 'a.cedar'), '@id("same") permit(principal, action, resource);');
    writeFileSync(join(folder, 'b.cedar'), '@id("same") forbid(principal, action, resource);');
    expect(() => readPolicySet(folder)).toThrow(/"same" appears in .*a\.cedar and in .*b\.cedar/);
  });

  it('refuses a missing path or a directory without .cedar files as usage errors', () => {
    expect(() => readPolicySet(join(dir, 'missing.cedar'))).toThrow(CliError);
    expect(() => readPolicySet(mkdtempSync(join(dir, 'empty-')))).toThrow(/no \.cedar files/);
  });
});
