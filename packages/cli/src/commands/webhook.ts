import type { CreatedWebhookView, WebhookList } from '@tether-broker/protocol/api';
import { type Command, InvalidArgumentError } from 'commander';
import { seg } from '../api.js';
import { printJson, renderFields, renderTable, say, shortTime } from '../output.js';
import { Session } from '../session.js';

const KINDS = ['github', 'jira', 'generic'] as const;
type Kind = (typeof KINDS)[number];

const ATTRIBUTE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

function parseAttribute(text: string): string {
  if (!ATTRIBUTE.test(text))
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not an attribute name`);
  return text;
}

/** Where to paste the URL and the secret, per ticket system. */
const SETUP: Record<Kind, string[]> = {
  github: [
    'In the repository (or organisation): Settings > Webhooks > Add webhook.',
    'Payload URL: the URL above. Content type: application/json. Secret: the secret above.',
    'Events: "Let me select individual events" > Issues.',
  ],
  jira: [
    'As a Jira admin: System > WebHooks > Create a WebHook.',
    'URL: the URL above. Secret: the secret above.',
    'Events: Issue created, Issue updated, Issue deleted.',
  ],
  generic: [
    'POST the JSON {delivery_id, ref, state: "open"|"closed", assignee?, title?, url?, updated_at}',
    'to the URL above, with X-Tether-Signature: sha256=<hex HMAC-SHA256 of the body under the secret>.',
  ],
};

/** What `tether webhook add` prints: the URL and the secret, shown this once, and where they go. */
export function createdText(w: CreatedWebhookView): string {
  const kind = (KINDS as readonly string[]).includes(w.kind) ? (w.kind as Kind) : 'generic';
  return [
    renderFields([
      ['webhook', `${w.name} (${w.id})`],
      ['kind', w.kind],
      ['url', w.url],
      ['secret', w.secret],
      ['assignees match', `principal attribute ${w.assignee_attribute}`],
    ]),
    '',
    'The secret is shown only now; the broker keeps it encrypted and never shows it again.',
    ...SETUP[kind],
  ].join('\n');
}

function addCommand(parent: Command, kind: Kind): void {
  parent
    .command(kind)
    .description(`register a ${kind} webhook as a ticket source; prints the URL and secret to paste into it`)
    .argument('<name>', 'the source name, unique in the tenant (ticket rules name it)')
    .option(
      '--assignee-attribute <attr>',
      `the principal attribute holding a person's ${kind} identity (default ${kind})`,
      parseAttribute,
    )
    .action(async (name: string, flags: { assigneeAttribute?: string }, command: Command) => {
      const session = new Session(command);
      const created = await session.call<CreatedWebhookView>('POST', '/v1/webhooks', {
        kind,
        name,
        ...(flags.assigneeAttribute ? { assignee_attribute: flags.assigneeAttribute } : {}),
      });
      if (session.json) return printJson(created);
      say(createdText(created));
    });
}

/** `tether webhook add github | jira | generic`, `list`, `show`, `remove` (/v1/webhooks). */
export function registerWebhook(program: Command): void {
  const webhook = program
    .command('webhook')
    .description(
      'ticket sources: signed webhooks of GitHub, Jira or any system that feed the ticket register',
    );
  const add = webhook
    .command('add')
    .description('register a ticket system as a source of the ticket register');
  for (const kind of KINDS) addCommand(add, kind);
  webhook
    .command('list')
    .description('list the ticket sources (never their secrets)')
    .action(async (_f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<WebhookList>('GET', '/v1/webhooks');
      if (session.json) return printJson(answer);
      if (answer.webhooks.length === 0) return say('no webhooks');
      say(
        renderTable(
          ['NAME', 'KIND', 'ASSIGNEE ATTRIBUTE', 'CREATED', 'URL'],
          answer.webhooks.map((w) => [w.name, w.kind, w.assignee_attribute, shortTime(w.created_at), w.url]),
        ),
      );
    });
  webhook
    .command('remove')
    .description('remove a ticket source: its deliveries are refused; its tickets stay in the register')
    .argument('<ref>', 'name or id')
    .action(async (ref: string, _f: unknown, command: Command) => {
      const session = new Session(command);
      const answer = await session.call<{ deleted: boolean }>('DELETE', `/v1/webhooks/${seg(ref)}`);
      session.emit(answer, () => say(`removed webhook ${ref}`));
    });
}
