import { EXIT } from './errors.js';

/**
 * SIGINT / SIGTERM: say so, run `stop` (drain, close), then exit 0 — or 1 if stopping failed.
 * A second signal exits at once.
 */
export function stopOnSignals(what: string, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(EXIT.refused);
    stopping = true;
    process.stderr.write(`${signal}: stopping the ${what}\n`);
    stop().then(
      () => process.exit(EXIT.ok),
      (err: unknown) => {
        process.stderr.write(`error stop_failed: ${(err as Error).message}\n`);
        process.exit(EXIT.refused);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
