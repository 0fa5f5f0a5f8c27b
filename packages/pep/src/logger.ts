/**
 * Where the PEP reports what happens beside decisions (stream failures, refused messages,
 * dropped decisions). Shaped like pino's methods, so a pino logger (or a child of the host
 * application's) can be passed as is. Never given a token, a proof or a key.
 */
export interface PepLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const nothing = () => undefined;

/** The default: says nothing. */
export const silentLogger: PepLogger = { debug: nothing, info: nothing, warn: nothing, error: nothing };
