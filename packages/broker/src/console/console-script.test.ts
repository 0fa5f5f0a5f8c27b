import { describe, expect, it } from 'vitest';
import { CONSOLE_JS } from './console-script.js';

describe('the console script', () => {
  it('is valid JavaScript as served (its escapes survive the template literal)', () => {
    expect(() => new Function(CONSOLE_JS)).not.toThrow();
    // The recording's sanitizer reaches the browser with its escapes intact.
    expect(CONSOLE_JS).toContain(String.raw`.replace(/\u001b\[[0-?]*[ -\/]*[@-~]/g, '')`);
    expect(CONSOLE_JS).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/);
  });

  it('writes API values as text only: no innerHTML, no insertAdjacentHTML, no document.write', () => {
    expect(CONSOLE_JS).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
  });
});
