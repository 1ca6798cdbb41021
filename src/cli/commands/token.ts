// keygate token create | list | show | revoke | restore | rotate | delete
import { parseDuration } from '../../config/units.js';
import { createToken, deleteToken, findToken, parseOptionalExpiry, restoreToken, revokeToken, rotateToken } from '../../store/operations.js';
import { listTokens, parseTokenFilter, TOKEN_COLUMNS, tokenView, type TokenFilter } from '../../store/views.js';
import type { StoreData, TokenRecord } from '../../store/types.js';
import type { Register } from '../program.js';
import { CliError, collect, examples, formatOf, mutate, usage, openManagement, readInventory, render, renderCsv, renderRecord, withConfigOption, withFormatOption, withVerboseOption, type Format, type Io, type Management } from '../support.js';

/** A flag the user typed wrong is a usage error (exit 2), not a failed operation. */
const expiryOption = (text: string | undefined, now: Date): string | null => usage(() => parseOptionalExpiry(text, now));

/**
 * The secret goes to stdout and nowhere else: not to stderr, not to the audit line. Alone by
 * default (table: what `$(keygate token create …)` captures), or first in the JSON object or
 * CSV row with the rest of the record, which is safe to show.
 */
function printSecret(io: Io, m: Management, format: Format, data: StoreData, record: TokenRecord, secret: string, extra: Record<string, unknown> = {}): void {
  if (format === 'table') return io.out(`${secret}\n`);
  const row = { token: secret, ...tokenView(record, data, {}, m.config, Date.now()), ...extra };
  io.out(format === 'json' ? JSON.stringify(row, null, 2) + '\n' : renderCsv([row], Object.keys(row)));
}

interface ChangeOpts {
  config: string;
  verbose?: boolean;
}

export const registerToken: Register = (program, io, env) => {
  const token = program.command('token').description('manage API tokens');
  examples(token, 'keygate token create --account ci-deployer --expires 90d', 'keygate token list --expiring 14d', 'keygate token rotate tok_5De9uufOrDC5qC --overlap 24h');

  const create = withVerboseOption(withFormatOption(withConfigOption(token.command('create')), undefined, true))
    .description('create a token; prints the secret once, alone on stdout (json and csv: with the record)')
    .requiredOption('--account <name>', 'the service account it proves')
    .option('--label <text>', 'what or where it is used')
    .option('--scope <scope...>', "own scopes, a subset of the account's (repeat or comma-separate); default: the account's", collect)
    .option('--expires <when>', 'a duration (30d, 12h) or a date (2027-01-31, ends 23:59:59.999 UTC); default: never')
    .option('--policy <name>', 'rate-limit policy; default: the account\'s, else "default"')
    .action(async (opts: ChangeOpts & { account: string; label?: string; scope?: string[]; expires?: string; policy?: string; format?: string; json?: boolean }) => {
      const format = formatOf(opts);
      const m = openManagement(opts, io, env);
      const expiresAt = expiryOption(opts.expires, new Date());
      const r = await mutate(m, (data) => ({ data, ...createToken(data, { account: opts.account, label: opts.label, scopes: opts.scope ?? null, expiresAt, policy: opts.policy ?? null }, m.op()) }));
      const { record } = r;
      m.audit({ event: 'token.created', target: record.id, account: record.account, label: record.label, scopes: record.scopes, policy: record.policy, expiresAt: record.expiresAt });
      printSecret(io, m, format, r.data, record, r.secret);
      io.err(`token ${record.id} created for account "${record.account}"${record.expiresAt ? `, expires ${record.expiresAt}` : ''}. Store the secret now: it is not shown again.\n`);
    });
  examples(create, 'keygate token create --account ci-deployer --label github-actions --expires 90d', 'TOKEN=$(keygate token create --account ci-deployer)', 'keygate token create --account ci-deployer --scope certs:read --format json');

  const list = withFormatOption(withConfigOption(token.command('list')))
    .description('token inventory: id, account, label, scopes, created, expires, last used, revoked at and reason (never secrets)')
    .option('--account <name>', 'only this account')
    .option('--status <status>', 'active, revoked or expired')
    .option('--expiring <within>', 'only active tokens that stop working (own expiry or account end date) within this time, e.g. 14d')
    .action(async (opts: { config: string; account?: string; status?: string; expiring?: string; format?: string }) => {
      const format = formatOf(opts);
      const filter: TokenFilter = usage(() => parseTokenFilter(opts));
      const m = openManagement(opts, io, env);
      const [data, used] = await Promise.all([readInventory(m), m.store.readUsage()]);
      if (opts.account !== undefined && !data.accounts.some((a) => a.name === opts.account)) throw new CliError(`no account named "${opts.account}"`, 'KG_ERR_NOT_FOUND');
      io.out(render(format, listTokens(data, used, filter, m.config, Date.now()), TOKEN_COLUMNS));
    });
  examples(list, 'keygate token list --account ci-deployer', 'keygate token list --status active --expiring 14d', 'keygate token list --format csv > tokens.csv');

  const show = withFormatOption(withConfigOption(token.command('show')), undefined, true)
    .description('one token of the inventory (never its secret)')
    .argument('<id>')
    .action(async (id: string, opts: { config: string; format?: string; json?: boolean }) => {
      const format = formatOf(opts);
      const m = openManagement(opts, io, env);
      const [data, used] = await Promise.all([readInventory(m), m.store.readUsage()]);
      const t = findToken(data, id);
      io.out(renderRecord(format, tokenView(t, data, used, m.config, Date.now())));
    });
  examples(show, 'keygate token show tok_5De9uufOrDC5qC', 'keygate token show tok_5De9uufOrDC5qC --format json');

  const revoke = withVerboseOption(withConfigOption(token.command('revoke')))
    .description('refuse a token at once (a running proxy within 1 s); reversible with restore')
    .argument('<id>')
    .option('--reason <text>', 'why (kept in the inventory and the audit log)')
    .action(async (id: string, opts: ChangeOpts & { reason?: string }) => {
      const m = openManagement(opts, io, env);
      const t = await mutate(m, (data) => revokeToken(data, id, opts.reason, m.op()));
      m.audit({ event: 'token.revoked', target: t.id, account: t.account, reason: t.revokeReason });
      io.err(`token ${t.id} revoked\n`);
    });
  examples(revoke, 'keygate token revoke tok_5De9uufOrDC5qC --reason "leaked in a CI log"');

  const restore = withVerboseOption(withConfigOption(token.command('restore')))
    .description('undo a revocation (refused for an expired token)')
    .argument('<id>')
    .action(async (id: string, opts: ChangeOpts) => {
      const m = openManagement(opts, io, env);
      const t = await mutate(m, (data) => restoreToken(data, id, m.op()));
      m.audit({ event: 'token.restored', target: t.id, account: t.account });
      io.err(`token ${t.id} restored\n`);
    });
  examples(restore, 'keygate token restore tok_5De9uufOrDC5qC');

  const rotate = withVerboseOption(withFormatOption(withConfigOption(token.command('rotate')), undefined, true))
    .description('create a successor (same account, label, scopes, policy) and let this one expire when the overlap ends; prints the new secret')
    .argument('<id>')
    .option('--overlap <duration>', 'how long the old token keeps working', '24h')
    .option('--expires <when>', "the new token's expiry; default: the old token's lifetime, from now")
    .action(async (id: string, opts: ChangeOpts & { overlap: string; expires?: string; format?: string; json?: boolean }) => {
      const format = formatOf(opts);
      const overlapMs = parseDuration(opts.overlap);
      if (overlapMs === undefined) throw new CliError(`invalid --overlap "${opts.overlap}": use a duration such as 24h`, 'KG_ERR_USAGE');
      const m = openManagement(opts, io, env);
      const expiresAt = opts.expires === undefined ? undefined : expiryOption(opts.expires, new Date());
      const r = await mutate(m, (data) => ({ data, ...rotateToken(data, id, overlapMs, m.op(), expiresAt) }));
      m.audit({ event: 'token.rotated', target: r.old.id, account: r.old.account, successor: r.record.id, oldExpiresAt: r.old.expiresAt, expiresAt: r.record.expiresAt });
      printSecret(io, m, format, r.data, r.record, r.secret, { replaces: r.old.id, replacedExpiresAt: r.old.expiresAt });
      io.err(`token ${r.record.id} replaces ${r.old.id}, which keeps working until ${r.old.expiresAt}. Store the secret now: it is not shown again.\n`);
    });
  examples(rotate, 'keygate token rotate tok_5De9uufOrDC5qC --overlap 7d', 'keygate token rotate tok_5De9uufOrDC5qC --overlap 0s --format json');

  const del = withVerboseOption(withConfigOption(token.command('delete')))
    .description('remove a token record for good (revoke is the reversible way)')
    .argument('<id>')
    .action(async (id: string, opts: ChangeOpts) => {
      const m = openManagement(opts, io, env);
      const t = await mutate(m, (data) => deleteToken(data, id));
      m.audit({ event: 'token.deleted', target: t.id, account: t.account });
      io.err(`token ${t.id} deleted\n`);
    });
  examples(del, 'keygate token delete tok_5De9uufOrDC5qC');
};
