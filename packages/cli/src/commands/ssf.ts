import { readFileSync } from 'node:fs';
import type { StatusView, StreamView } from '@tether-broker/protocol/api';
import { type Command, InvalidArgumentError } from 'commander';
import { collectList } from '../attributes.js';
import { CliError, EXIT } from '../errors.js';
import { list, printJson, renderFields, renderTable, say } from '../output.js';
import { Session } from '../session.js';

const PUSH = 'urn:ietf:rfc:8935';
const POLL = 'urn:ietf:rfc:8936';
const EVENT_PREFIX = 'https://schemas.openid.net/secevent/caep/event-type/';
/** The CAEP events the broker sends, by their short names. */
export const EVENT_NAMES = ['session-revoked', 'token-claims-change'] as const;

interface CreateFlags {
  push?: string;
  poll?: boolean;
  authorizationFile?: string;
  event?: string[];
  aud?: string[];
  description?: string;
}

/** `session-revoked` → its CAEP URI; a full URI is taken as it is. */
export function parseEvent(value: string): string {
  if ((EVENT_NAMES as readonly string[]).includes(value)) return `${EVENT_PREFIX}${value}`;
  if (/^[a-z][a-z0-9+.-]*:\S+$/i.test(value)) return value;
  throw new InvalidArgumentError(
    `${JSON.stringify(value)} is not an event: ${EVENT_NAMES.join(', ')}, or a URI`,
  );
}

/** The short name of an event URI the broker sends, else the URI. */
export function eventName(uri: string): string {
  return uri.startsWith(EVENT_PREFIX) ? uri.slice(EVENT_PREFIX.length) : uri;
}

/**
 * The Authorization header a push endpoint wants, from a file (first line), so that the
 * secret is not on the command line where `ps` shows it.
 */
function readAuthorization(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new CliError('invalid_argument', `cannot read ${path} (${reason})`, EXIT.usage);
  }
  const line = text.split(/\r?\n/)[0]?.trim() ?? '';
  if (line === '') throw new CliError('invalid_argument', `${path} holds no header value`, EXIT.usage);
  return line;
}

/** Flags → the body of `POST /v1/ssf/streams`. */
export function streamBody(flags: CreateFlags): Record<string, unknown> {
  if ((flags.push === undefined) === (flags.poll !== true)) {
    throw new CliError('invalid_argument', 'choose the delivery: --push <url> or --poll (one)', EXIT.usage);
  }
  if (flags.poll && flags.authorizationFile !== undefined) {
    throw new CliError('invalid_argument', '--authorization-file applies to --push only', EXIT.usage);
  }
  const delivery =
    flags.push === undefined
      ? { method: POLL }
      : {
          method: PUSH,
          endpoint_url: flags.push,
          ...(flags.authorizationFile === undefined
            ? {}
            : { authorization_header: readAuthorization(flags.authorizationFile) }),
        };
  return {
    delivery,
    ...(flags.event ? { events_requested: flags.event } : {}),
    ...(flags.aud ? { aud: flags.aud } : {}),
    ...(flags.description === undefined ? {} : { description: flags.description }),
  };
}

const methodName = (uri: string) => (uri === PUSH ? 'push' : uri === POLL ? 'poll' : uri);
const audText = (aud: string | string[]) => (typeof aud === 'string' ? aud : list(aud));

function streamDetails(s: StreamView, status: StatusView): string {
  return renderFields([
    ['stream', s.stream_id],
    ['status', status.reason ? `${status.status} (${status.reason})` : status.status],
    ['delivery', `${methodName(s.delivery.method)} ${s.delivery.endpoint_url}`],
    ['events', list(s.events_delivered.map(eventName))],
    ['requested', list(s.events_requested.map(eventName))],
    ['aud', audText(s.aud)],
    ['issuer', s.iss],
    ['description', s.description],
  ]);
}

async function statusOf(session: Session, id: string): Promise<StatusView> {
  return session.lookup<StatusView>('GET', `/v1/ssf/status?stream_id=${encodeURIComponent(id)}`);
}

function registerStatusVerb(streams: Command, verb: string, status: string, description: string): void {
  streams
    .command(verb)
    .description(description)
    .argument('<stream>', 'stream id')
    .option('--reason <text>', 'why, as the stream status will say')
    .action(async (id: string, flags: { reason?: string }, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<StatusView>('POST', '/v1/ssf/status', {
        stream_id: id,
        status,
        ...(flags.reason === undefined ? {} : { reason: flags.reason }),
      });
      session.emit(answer, (a) => say(`stream ${a.stream_id} is ${a.status}`));
    });
}

/** `tether ssf streams …`: the event streams that carry the broker's CAEP signals to receivers (SSF 1.0). */
export function registerSsf(program: Command): void {
  const ssf = program
    .command('ssf')
    .description('signals out: Shared Signals (SSF) streams to downstream receivers');
  const streams = ssf
    .command('streams')
    .description("list and manage event streams (admins: all of the tenant's; receivers: their own)")
    .action(async (_f: unknown, command: Command) => listStreams(command));
  streams
    .command('list')
    .description('list the event streams')
    .action(async (_f: unknown, command: Command) => listStreams(command));
  streams
    .command('show')
    .description('show a stream, its status and where its SETs go')
    .argument('<stream>', 'stream id')
    .action(async (id: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const stream = await session.call<StreamView>(
        'GET',
        `/v1/ssf/streams?stream_id=${encodeURIComponent(id)}`,
      );
      if (session.json) return printJson(stream);
      say(streamDetails(stream, await statusOf(session, id)));
    });
  streams
    .command('create')
    .description('create a stream: CAEP session-revoked and token-claims-change SETs, pushed or polled')
    .option('--push <url>', "push SETs to the receiver's endpoint (https; http on loopback only)")
    .option('--poll', 'let the receiver poll for SETs (RFC 8936)')
    .option('--authorization-file <file>', 'a file whose first line is the Authorization header to push with')
    .option(
      '--event <event>',
      `an event to send: ${EVENT_NAMES.join(', ')} (repeatable; default both)`,
      (v, p) => collectList(parseEvent(v), p as string[] | undefined),
    )
    .option(
      '--aud <aud>',
      "the SETs' audience, the receiver's identifier (repeatable; admins only)",
      collectList,
    )
    .option('--description <text>', 'what the stream is for')
    .action(async (flags: CreateFlags, command: Command) => {
      const body = streamBody(flags);
      const session = new Session(command);
      const created = await session.call<StreamView>('POST', '/v1/ssf/streams', body);
      if (session.json) return printJson(created);
      say(streamDetails(created, { stream_id: created.stream_id, status: 'enabled' }));
    });
  streams
    .command('delete')
    .description('delete a stream; the SETs still waiting on it are dropped')
    .argument('<stream>', 'stream id')
    .action(async (id: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      await session.call('DELETE', `/v1/ssf/streams?stream_id=${encodeURIComponent(id)}`);
      session.emit({ deleted: true }, () => say(`deleted stream ${id}`));
    });
  registerStatusVerb(streams, 'enable', 'enabled', 'send SETs again, held ones first');
  registerStatusVerb(streams, 'pause', 'paused', 'hold SETs, in order, until the stream is enabled');
  registerStatusVerb(
    streams,
    'disable',
    'disabled',
    'send nothing and hold nothing (waiting SETs are dropped)',
  );
  streams
    .command('verify')
    .description('ask for a verification SET on the stream (SSF 1.0 §8.1.4)')
    .argument('<stream>', 'stream id')
    .option('--state <text>', 'a value the verification SET echoes back')
    .action(async (id: string, flags: { state?: string }, command: Command) => {
      const session = new Session(command);
      await session.call('POST', '/v1/ssf/verify', {
        stream_id: id,
        ...(flags.state === undefined ? {} : { state: flags.state }),
      });
      session.emit({ requested: true }, () => say(`verification requested on stream ${id}`));
    });
}

async function listStreams(command: Command): Promise<void> {
  const session = new Session(command);
  const answer = await session.call<StreamView[]>('GET', '/v1/ssf/streams');
  if (session.json) return printJson(answer);
  if (answer.length === 0) return say('no event streams');
  const rows: string[][] = [];
  for (const s of answer) {
    const status = await statusOf(session, s.stream_id);
    rows.push([
      s.stream_id,
      status.status,
      methodName(s.delivery.method),
      s.delivery.endpoint_url,
      list(s.events_delivered.map(eventName)),
      audText(s.aud),
    ]);
  }
  say(renderTable(['ID', 'STATUS', 'DELIVERY', 'ENDPOINT', 'EVENTS', 'AUD'], rows));
}
