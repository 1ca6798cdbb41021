// keygate token create | list | show | revoke | restore | rotate | delete
import { parseDuration } from '../../config/units.js';
import { createToken, deleteToken, findToken, parseOptionalExpiry, restoreToken, revokeToken, rotateToken } from '../../store/operations.js';
import { listTokens, parseTokenFilter, TOKEN_COLUMNS, tokenView, type TokenFilter } from '../../store/views.js';
import type { StoreData, TokenRecord } from '../../store/types.js';
import type { Register } from '../program.js';
import { CliError, collect, mutate, usage, openManagement, parseFormat, render, renderFields, withConfigOption, type Io, type Management } from '../support.js';

/** A flag the user typed wrong is a usage error (exit 2), not a failed operation. */
const expiryOption = (text: string | undefined, now: Date): string | null => usage(() => parseOptionalExpiry(text, now));

/**
 * The secret goes to stdout alone (or inside the --json object) and nowhere else: not to
 * stderr, not to the audit line. The rest of the record is safe to show.
 */
function printSecret(io: Io, m: Management, json: boolean | undefined, data: StoreData, record: TokenRecord, secret: string, extra: Record<string, unknown> = {}): void {
  if (json) io.out(JSON.stringify({ token: secret, ...tokenView(record, data, {}, m.config, Date.now()), ...extra }, null, 2) + '\n');
  else io.out(`${secret}\n`);
}

export const registerToken: Register = (program, io, env) => {
  const token = program.command('token').description('manage API tokens');

  withConfigOption(token.command('create'))
    .description('create a token; prints the secret once, alone on stdout')
    .requiredOption('--account <name>', 'the service account it proves')
    .option('--label <text>', 'what or where it is used')
    .option('--scope <scope...>', "own scopes, a subset of the account's (repeat or comma-separate); default: the account's", collect)
    .option('--expires <when>', 'a duration (30d, 12h) or a date (2027-01-31, ends 23:59:59.999 UTC); default: never')
    .option('--policy <name>', 'rate-limit policy; default: the account\'s, else "default"')
    .option('--json', 'print a JSON object holding the secret and the token record')
    .action(async (opts: { config: string; account: string; label?: string; scope?: string[]; expires?: string; policy?: string; json?: boolean }) => {
      const m = openManagement(opts.config, io, env);
      const expiresAt = expiryOption(opts.expires, new Date());
      const r = await mutate(m, (data) => ({ data, ...createToken(data, { account: opts.account, label: opts.label, scopes: opts.scope ?? null, expiresAt, policy: opts.policy ?? null }, m.op()) }));
      const { record } = r;
      m.audit({ event: 'token.created', target: record.id, account: record.account, label: record.label, scopes: record.scopes, policy: record.policy, expiresAt: record.expiresAt });
      printSecret(io, m, opts.json, r.data, record, r.secret);
      if (!opts.json) io.err(`token ${record.id} created for account "${record.account}"${record.expiresAt ? `, expires ${record.expiresAt}` : ''}. Store the secret now: it is not shown again.\n`);
    });

  withConfigOption(token.command('list'))
    .description('token inventory: id, account, label, scopes, created, expires, last used, revoked at and reason (never secrets)')
    .option('--account <name>', 'only this account')
    .option('--status <status>', 'active, revoked or expired')
    .option('--expiring <within>', 'only active tokens that stop working (own expiry or account end date) within this time, e.g. 14d')
    .option('--format <format>', 'table, json or csv', 'table')
    .action(async (opts: { config: string; account?: string; status?: string; expiring?: string; format: string }) => {
      const format = parseFormat(opts.format);
      const filter: TokenFilter = usage(() => parseTokenFilter(opts));
      const m = openManagement(opts.config, io, env);
      const [data, used] = await Promise.all([m.store.read(), m.store.readUsage()]);
      if (opts.account !== undefined && !data.accounts.some((a) => a.name === opts.account)) throw new CliError(`no account named "${opts.account}"`, 'KG_ERR_NOT_FOUND');
      io.out(render(format, listTokens(data, used, filter, m.config, Date.now()), TOKEN_COLUMNS));
    });

  withConfigOption(token.command('show'))
    .description('one token of the inventory (never its secret)')
    .argument('<id>')
    .option('--json', 'JSON output')
    .action(async (id: string, opts: { config: string; json?: boolean }) => {
      const m = openManagement(opts.config, io, env);
      const [data, used] = await Promise.all([m.store.read(), m.store.readUsage()]);
      const t = findToken(data, id);
      const view = tokenView(t, data, used, m.config, Date.now());
      io.out(opts.json ? JSON.stringify(view, null, 2) + '\n' : renderFields(view));
    });

  withConfigOption(token.command('revoke'))
    .description('refuse a token at once (a running proxy within 1 s); reversible with restore')
    .argument('<id>')
    .option('--reason <text>', 'why (kept in the inventory and the audit log)')
    .action(async (id: string, opts: { config: string; reason?: string }) => {
      const m = openManagement(opts.config, io, env);
      const t = await mutate(m, (data) => revokeToken(data, id, opts.reason, m.op()));
      m.audit({ event: 'token.revoked', target: t.id, account: t.account, reason: t.revokeReason });
      io.err(`token ${t.id} revoked\n`);
    });

  withConfigOption(token.command('restore'))
    .description('undo a revocation (refused for an expired token)')
    .argument('<id>')
    .action(async (id: string, opts: { config: string }) => {
      const m = openManagement(opts.config, io, env);
      const t = await mutate(m, (data) => restoreToken(data, id, m.op()));
      m.audit({ event: 'token.restored', target: t.id, account: t.account });
      io.err(`token ${t.id} restored\n`);
    });

  withConfigOption(token.command('rotate'))
    .description('create a successor (same account, label, scopes, policy) and let this one expire when the overlap ends; prints the new secret')
    .argument('<id>')
    .option('--overlap <duration>', 'how long the old token keeps working', '24h')
    .option('--expires <when>', "the new token's expiry; default: the old token's lifetime, from now")
    .option('--json', 'print a JSON object holding the new secret and record')
    .action(async (id: string, opts: { config: string; overlap: string; expires?: string; json?: boolean }) => {
      const overlapMs = parseDuration(opts.overlap);
      if (overlapMs === undefined) throw new CliError(`invalid --overlap "${opts.overlap}": use a duration such as 24h`, 'KG_ERR_USAGE');
      const m = openManagement(opts.config, io, env);
      const expiresAt = opts.expires === undefined ? undefined : expiryOption(opts.expires, new Date());
      const r = await mutate(m, (data) => ({ data, ...rotateToken(data, id, overlapMs, m.op(), expiresAt) }));
      m.audit({ event: 'token.rotated', target: r.old.id, account: r.old.account, successor: r.record.id, oldExpiresAt: r.old.expiresAt, expiresAt: r.record.expiresAt });
      printSecret(io, m, opts.json, r.data, r.record, r.secret, { replaces: r.old.id, replacedExpiresAt: r.old.expiresAt });
      if (!opts.json) io.err(`token ${r.record.id} replaces ${r.old.id}, which keeps working until ${r.old.expiresAt}. Store the secret now: it is not shown again.\n`);
    });

  withConfigOption(token.command('delete'))
    .description('remove a token record for good (revoke is the reversible way)')
    .argument('<id>')
    .action(async (id: string, opts: { config: string }) => {
      const m = openManagement(opts.config, io, env);
      const t = await mutate(m, (data) => deleteToken(data, id));
      m.audit({ event: 'token.deleted', target: t.id, account: t.account });
      io.err(`token ${t.id} deleted\n`);
    });
};
