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

/**
 * `promise`, or a failure naming `what` once `timeoutMs` (real time) pass: a step that hangs
 * then says which step it was, instead of the test's own timeout saying nothing.
 */
export async function within<T>(what: string, promise: Promise<T>, timeoutMs = 8000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
