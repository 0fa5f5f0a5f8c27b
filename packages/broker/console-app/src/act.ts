/**
 * An action a person takes in the console: it runs, the status line says how it went (what the
 * action told, or "<what>: done.", or "<what> failed: <why>"), then the views read the tenant
 * again.
 */
export type Act = (what: string, run: () => Promise<unknown>) => () => Promise<void>;

/** The `Act` of a view that says things with `say` and reads the tenant again with `reload`. */
export function actWith(say: (text: string) => void, reload: () => Promise<void>): Act {
  return (what, run) => async () => {
    try {
      const told = await run();
      say(typeof told === 'string' ? told : `${what}: done.`);
    } catch (err) {
      say(`${what} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    await reload();
  };
}

/** `n min` of some seconds. */
export const minutes = (seconds: number): string => `${Math.round(seconds / 60)} min`;
