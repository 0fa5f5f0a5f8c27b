import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { collectAttribute, parseAttribute } from './attributes.js';

describe('--attr key=value', () => {
  it('splits at the first = only, so values may contain =', () => {
    expect(parseAttribute('team=netops')).toEqual(['team', 'netops']);
    expect(parseAttribute('query=a=b')).toEqual(['query', 'a=b']);
    expect(parseAttribute('note=')).toEqual(['note', '']);
  });

  it.each(['team', '=netops', ' =x', ''])('refuses %j', (text) => {
    expect(() => parseAttribute(text)).toThrow(InvalidArgumentError);
  });

  it('collects repeated options into one record; a repeated key keeps its last value', () => {
    let record: Record<string, string> | undefined;
    for (const arg of ['team=netops', 'site=ams', 'team=security']) record = collectAttribute(arg, record);
    expect(record).toEqual({ team: 'security', site: 'ams' });
  });
});
