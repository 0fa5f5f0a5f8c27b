import { EXIT } from './errors.js';
import { warn } from './output.js';

/**
 * SIGINT / SIGTERM: say so, run `stop` (drain, close), then exit 0 — or 1 if stopping failed.
 * A second signal exits at once.
 */
export function stopOnSignals(what: string, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(EXIT.refused);
    stopping = true;
    warn(`${signal}: stopping the ${what}`);
    stop().then(
      () => process.exit(EXIT.ok),
      (err: unknown) => {
        warn(`error stop_failed: ${(err as Error).message}`);
        process.exit(EXIT.refused);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
