/**
 * Polls `condition` (real time) until it holds, failing after `timeoutMs` with `what` in the
 * message. For waiting on another process or an event loop, never for a timeout to pass.
 */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
