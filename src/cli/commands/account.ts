// keygate account create | list | show | update | disable | enable | delete
import { createAccount, deleteAccount, findAccount, updateAccount, type AccountPatch } from '../../store/operations.js';
import { ACCOUNT_COLUMNS, accountDetail, accountEndMs, accountView } from '../../store/views.js';
import type { AccountRecord } from '../../store/types.js';
import type { Register } from '../program.js';
import { CliError, collect, mutate, openManagement, parseFormat, render, renderFields, withConfigOption, type Io } from '../support.js';

const nameOf = (positional: string | undefined, opts: { name?: string }): string => {
  const name = positional ?? opts.name;
  if (!name) throw new CliError('name the account (keygate account <command> NAME)', 'KG_ERR_USAGE');
  if (positional !== undefined && opts.name !== undefined && positional !== opts.name) throw new CliError(`two different account names given: "${positional}" and --name "${opts.name}"`, 'KG_ERR_USAGE');
  return name;
};

/** "none" clears an optional value. */
const orNull = (v: string | undefined): string | null | undefined => (v === undefined ? undefined : v === 'none' ? null : v);

function printAccount(io: Io, a: AccountRecord): void {
  io.out(`${JSON.stringify(a, null, 2)}\n`);
  // Allowed on purpose (ending an account now is a legitimate change), but rarely meant.
  const end = accountEndMs(a);
  if (end !== null && end <= Date.now()) io.err(`keygate: note: end date ${a.endDate} has passed; every credential of "${a.name}" is refused\n`);
}

export const registerAccount: Register = (program, io, env) => {
  const account = program.command('account').description('manage service accounts');

  withConfigOption(account.command('create'))
    .description('create a service account')
    .requiredOption('--name <name>', 'unique name: letters, digits, spaces, - and _')
    .option('--description <text>', 'what the account is for')
    .option('--owner <email>', 'who answers for it (e-mail address)')
    .option('--end-date <YYYY-MM-DD>', 'last day it works (it ends at 23:59:59.999 UTC that day)')
    .option('--role <role...>', 'roles (repeat or comma-separate)', collect)
    .option('--scope <scope...>', 'scopes (repeat or comma-separate)', collect)
    .option('--policy <name>', 'rate-limit policy')
    .action(async (opts: { config: string; name: string; description?: string; owner?: string; endDate?: string; role?: string[]; scope?: string[]; policy?: string }) => {
      const m = openManagement(opts.config, io, env);
      const a = await mutate(m, (data) =>
        createAccount(data, { name: opts.name, description: opts.description, owner: opts.owner, endDate: opts.endDate ?? null, roles: opts.role, scopes: opts.scope, policy: opts.policy ?? null }, m.op()),
      );
      m.audit({ event: 'account.created', target: a.name, owner: a.owner, roles: a.roles, scopes: a.scopes, policy: a.policy, endDate: a.endDate });
      printAccount(io, a);
    });

  withConfigOption(account.command('list'))
    .description('list service accounts')
    .option('--format <format>', 'table, json or csv', 'table')
    .action(async (opts: { config: string; format: string }) => {
      const format = parseFormat(opts.format);
      const m = openManagement(opts.config, io, env);
      const data = await m.store.read();
      const now = Date.now();
      io.out(render(format, data.accounts.map((a) => accountView(a, data, now)), ACCOUNT_COLUMNS));
    });

  withConfigOption(account.command('show'))
    .description('show one account with its tokens and certificate bindings')
    .argument('[name]')
    .option('--name <name>')
    .option('--json', 'JSON output')
    .action(async (positional: string | undefined, opts: { config: string; name?: string; json?: boolean }) => {
      const name = nameOf(positional, opts);
      const m = openManagement(opts.config, io, env);
      const [data, used] = await Promise.all([m.store.read(), m.store.readUsage()]);
      const a = findAccount(data, name);
      const detail = accountDetail(a, data, used, m.config, Date.now());
      if (opts.json) {
        io.out(JSON.stringify(detail, null, 2) + '\n');
        return;
      }
      const { tokens, bindings, ...summary } = detail;
      io.out(
        `${renderFields(summary)}\ntokens:\n` +
          render('table', tokens, ['id', 'label', 'status', 'scopes', 'expiresAt', 'lastUsedAt', 'revokedAt', 'rotatedFrom', 'rotatedTo']) +
          `\ncertificate bindings:\n` +
          render('table', bindings, ['id', 'nickname', 'match', 'value', 'status', 'endDate', 'notAfter', 'lastUsedAt']),
      );
    });

  withConfigOption(account.command('update'))
    .description('change an account ("none" clears --end-date and --policy)')
    .argument('[name]')
    .option('--name <name>')
    .option('--description <text>')
    .option('--owner <email>')
    .option('--end-date <YYYY-MM-DD|none>')
    .option('--role <role...>', 'replace the roles (repeat or comma-separate; "none" for none)', collect)
    .option('--scope <scope...>', 'replace the scopes (repeat or comma-separate; "none" for none)', collect)
    .option('--policy <name|none>')
    .action(async (positional: string | undefined, opts: { config: string; name?: string; description?: string; owner?: string; endDate?: string; role?: string[]; scope?: string[]; policy?: string }) => {
      const name = nameOf(positional, opts);
      const list = (v: string[] | undefined) => (v === undefined ? undefined : v.filter((x) => x !== 'none'));
      const patch: AccountPatch = { description: opts.description, owner: opts.owner, endDate: orNull(opts.endDate), roles: list(opts.role), scopes: list(opts.scope), policy: orNull(opts.policy) };
      const changes = Object.keys(patch).filter((k) => patch[k as keyof AccountPatch] !== undefined);
      if (changes.length === 0) throw new CliError('nothing to change: give at least one of --description, --owner, --end-date, --role, --scope, --policy', 'KG_ERR_USAGE');
      const m = openManagement(opts.config, io, env);
      const a = await mutate(m, (data) => updateAccount(data, name, patch, m.op()));
      m.audit({ event: 'account.updated', target: a.name, changes });
      printAccount(io, a);
    });

  for (const [verb, disabled] of [['disable', true], ['enable', false]] as const) {
    withConfigOption(account.command(verb))
      .description(disabled ? 'refuse every credential of the account at once (reversible)' : 'admit the account again')
      .argument('[name]')
      .option('--name <name>')
      .action(async (positional: string | undefined, opts: { config: string; name?: string }) => {
        const name = nameOf(positional, opts);
        const m = openManagement(opts.config, io, env);
        await mutate(m, (data) => updateAccount(data, name, { disabled }, m.op()));
        m.audit({ event: disabled ? 'account.disabled' : 'account.enabled', target: name });
        io.err(`account "${name}" ${disabled ? 'disabled' : 'enabled'}\n`);
      });
  }

  withConfigOption(account.command('delete'))
    .description('delete an account and its credentials (refused while it holds active credentials, unless --force)')
    .argument('[name]')
    .option('--name <name>')
    .option('--force', 'delete even with active credentials')
    .action(async (positional: string | undefined, opts: { config: string; name?: string; force?: boolean }) => {
      const name = nameOf(positional, opts);
      const m = openManagement(opts.config, io, env);
      const r = await mutate(m, (data) => deleteAccount(data, name, opts.force === true, m.op()));
      m.audit({ event: 'account.deleted', target: name, tokens: r.tokens, certificates: r.certificates, force: opts.force === true });
      io.err(`account "${name}" deleted with ${r.tokens.length} token(s) and ${r.certificates.length} certificate binding(s)\n`);
    });
};
