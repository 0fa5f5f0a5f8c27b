import { describe, expect, it } from 'vitest';
import { CONSOLE_JS } from './console-script.js';

describe('the console script', () => {
  it('is valid JavaScript as served (its escapes survive the template literal)', () => {
    expect(() => new Function(CONSOLE_JS)).not.toThrow();
    // The recording's sanitizer reaches the browser with its escapes intact.
    expect(CONSOLE_JS).toContain(String.raw`.replace(/\u001b\[[0-?]*[ -\/]*[@-~]/g, '')`);
    // No raw control character reaches the served text (only newlines, as written).
    const controls = [...CONSOLE_JS].filter((c) => c.charCodeAt(0) < 0x20 && c !== '\n');
    expect(controls).toEqual([]);
  });

  it('writes API values as text only: no innerHTML, no insertAdjacentHTML, no document.write', () => {
    expect(CONSOLE_JS).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
  });
});
