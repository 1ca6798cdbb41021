// keygate token create | list | revoke | restore | rotate | delete
import { parseDuration } from '../../config/units.js';
import { createToken, deleteToken, parseExpiry, restoreToken, revokeToken, rotateToken, tokenStatus } from '../../store/operations.js';
import { OperationError } from '../../store/operations.js';
import type { TokenRecord, UsageMap } from '../../store/types.js';
import type { Register } from '../program.js';
import { CliError, collect, mutate, openManagement, parseFormat, render, withConfigOption, type Io } from '../support.js';

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

/** The inventory view of a token: everything but the secret, which keygate never had. */
export function tokenRow(t: TokenRecord, usage: UsageMap, nowMs: number) {
  return {
    id: t.id,
    account: t.account,
    label: t.label,
    status: tokenStatus(t, nowMs),
    scopes: t.scopes ?? [],
    ownScopes: t.scopes !== null,
    policy: t.policy,
    createdAt: t.createdAt,
    expiresAt: t.expiresAt,
    lastUsedAt: iso(usage[t.id]),
    revokedAt: t.revokedAt,
    revokeReason: t.revokeReason,
    rotatedFrom: t.rotatedFrom,
    rotatedTo: t.rotatedTo,
  };
}

export const TOKEN_COLUMNS = ['id', 'account', 'label', 'status', 'scopes', 'policy', 'createdAt', 'expiresAt', 'lastUsedAt', 'revokedAt', 'revokeReason', 'rotatedFrom', 'rotatedTo'];

function expiryOption(text: string | undefined, now: Date): string | null {
  if (text === undefined || text === 'never') return null;
  try {
    return parseExpiry(text, now);
  } catch (err) {
    throw new CliError((err as OperationError).message, 2);
  }
}

function printSecret(io: Io, json: boolean | undefined, record: TokenRecord, secret: string, extra: Record<string, unknown> = {}): void {
  if (json) {
    io.out(JSON.stringify({ token: secret, ...tokenRow(record, {}, Date.now()), ...extra }, null, 2) + '\n');
  } else {
    io.out(`${secret}\n`);
  }
}

export const registerToken: Register = (program, io, env) => {
  const token = program.command('token').description('manage API tokens');

  withConfigOption(token.command('create'))
    .description('create a token; prints the secret once, alone on stdout')
    .requiredOption('--account <name>', 'the service account it proves')
    .option('--label <text>', 'what or where it is used')
    .option('--scope <scope...>', "own scopes, a subset of the account's (repeat or comma-separate); default: the account's", collect)
    .option('--expires <when>', 'a duration (30d, 12h) or a date (2027-01-31); default: never')
    .option('--policy <name>', 'rate-limit policy; default: the account\'s, else "default"')
    .option('--json', 'print a JSON object holding the secret and the token record')
    .action(async (opts: { config: string; account: string; label?: string; scope?: string[]; expires?: string; policy?: string; json?: boolean }) => {
      const m = openManagement(opts.config, io, env);
      const now = new Date();
      const expiresAt = expiryOption(opts.expires, now);
      const { record, secret } = await mutate(m, (data) => createToken(data, { account: opts.account, label: opts.label, scopes: opts.scope ?? null, expiresAt, policy: opts.policy ?? null }, m.op()));
      m.audit({ event: 'token.created', target: record.id, account: record.account, label: record.label, scopes: record.scopes, expiresAt: record.expiresAt });
      printSecret(io, opts.json, record, secret);
      if (!opts.json) io.err(`token ${record.id} created for account "${record.account}"${record.expiresAt ? `, expires ${record.expiresAt}` : ''}. Store the secret now: it is not shown again.\n`);
    });

  withConfigOption(token.command('list'))
    .description('token inventory (never secrets)')
    .option('--account <name>', 'only this account')
    .option('--status <status>', 'active, revoked or expired')
    .option('--expiring <within>', 'only active tokens that expire within this time (e.g. 14d)')
    .option('--format <format>', 'table, json or csv', 'table')
    .action(async (opts: { config: string; account?: string; status?: string; expiring?: string; format: string }) => {
      const format = parseFormat(opts.format);
      if (opts.status && !['active', 'revoked', 'expired'].includes(opts.status)) throw new CliError(`unknown status "${opts.status}": use active, revoked or expired`, 2);
      let within: number | undefined;
      if (opts.expiring !== undefined) {
        within = parseDuration(opts.expiring);
        if (within === undefined) throw new CliError(`invalid --expiring "${opts.expiring}": use a duration such as 14d`, 2);
      }
      const m = openManagement(opts.config, io, env);
      const [data, usage] = await Promise.all([m.store.read(), m.store.readUsage()]);
      const now = Date.now();
      const rows = data.tokens
        .filter((t) => opts.account === undefined || t.account === opts.account)
        .map((t) => tokenRow(t, usage, now))
        .filter((r) => opts.status === undefined || r.status === opts.status)
        .filter((r) => within === undefined || (r.status === 'active' && r.expiresAt !== null && Date.parse(r.expiresAt) - now <= within));
      io.out(render(format, rows, TOKEN_COLUMNS));
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
    .description('create a successor (same account, label, scopes, policy) and let this one expire after the overlap; prints the new secret')
    .argument('<id>')
    .option('--overlap <duration>', 'how long the old token keeps working', '24h')
    .option('--expires <when>', "the new token's expiry; default: the old token's lifetime from now")
    .option('--json', 'print a JSON object holding the new secret and record')
    .action(async (id: string, opts: { config: string; overlap: string; expires?: string; json?: boolean }) => {
      const overlapMs = parseDuration(opts.overlap);
      if (overlapMs === undefined) throw new CliError(`invalid --overlap "${opts.overlap}": use a duration such as 24h`, 2);
      const m = openManagement(opts.config, io, env);
      const expiresAt = opts.expires === undefined ? undefined : expiryOption(opts.expires, new Date());
      const r = await mutate(m, (data) => rotateToken(data, id, overlapMs, m.op(), expiresAt));
      m.audit({ event: 'token.rotated', target: r.old.id, account: r.old.account, successor: r.record.id, oldExpiresAt: r.old.expiresAt });
      printSecret(io, opts.json, r.record, r.secret, { replaces: r.old.id, replacedExpiresAt: r.old.expiresAt });
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
