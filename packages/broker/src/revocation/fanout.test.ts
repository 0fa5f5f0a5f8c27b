import { describe, expect, it } from 'vitest';
import { RevocationFanout } from './fanout.js';

describe('RevocationFanout', () => {
  it('wakes only the listeners of the tenant whose log grew', () => {
    const fanout = new RevocationFanout();
    const heard: string[] = [];
    fanout.subscribe('ten_a', (seq) => heard.push(`a1:${seq}`));
    fanout.subscribe('ten_a', (seq) => heard.push(`a2:${seq}`));
    fanout.subscribe('ten_b', (seq) => heard.push(`b:${seq}`));
    fanout.notify('ten_a', 7);
    expect(heard).toEqual(['a1:7', 'a2:7']);
    fanout.notify('ten_c', 1);
    expect(heard).toEqual(['a1:7', 'a2:7']);
  });

  it('stops waking a listener that unsubscribed, and forgets a tenant with none left', () => {
    const fanout = new RevocationFanout();
    const heard: number[] = [];
    const listener = (seq: number) => heard.push(seq);
    const first = fanout.subscribe('ten_a', listener);
    const second = fanout.subscribe('ten_a', listener);
    expect(fanout.listenerCount('ten_a')).toBe(2);
    first();
    first();
    fanout.notify('ten_a', 1);
    expect(heard).toEqual([1]);
    second();
    expect(fanout.listenerCount('ten_a')).toBe(0);
    fanout.notify('ten_a', 2);
    expect(heard).toEqual([1]);
  });

  it('wakes every listener even when one throws, and lets a listener unsubscribe while being woken', () => {
    const fanout = new RevocationFanout();
    const heard: string[] = [];
    const stop = fanout.subscribe('ten_a', () => {
      heard.push('first');
      stop();
    });
    fanout.subscribe('ten_a', () => {
      throw new Error('broken stream');
    });
    fanout.subscribe('ten_a', () => heard.push('third'));
    expect(() => fanout.notify('ten_a', 1)).not.toThrow();
    fanout.notify('ten_a', 2);
    expect(heard).toEqual(['first', 'third', 'third']);
  });
});
