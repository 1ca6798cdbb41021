// keygate account create | list | show | update | disable | enable | delete
import { createAccount, deleteAccount, findAccount, updateAccount, type AccountPatch } from '../../store/operations.js';
import { ACCOUNT_COLUMNS, accountDetail, accountEndMs, accountViews } from '../../store/views.js';
import type { AccountRecord } from '../../store/types.js';
import type { Register } from '../program.js';
import { CliError, collect, examples, formatOf, mutate, openManagement, readInventory, render, renderCsv, renderRecord, renderFields, withConfigOption, withFormatOption, withVerboseOption, type Format, type Io } from '../support.js';

const nameOf = (positional: string | undefined, opts: { name?: string }): string => {
  const name = positional ?? opts.name;
  if (!name) throw new CliError('name the account (keygate account <command> NAME)', 'KG_ERR_USAGE');
  if (positional !== undefined && opts.name !== undefined && positional !== opts.name) throw new CliError(`two different account names given: "${positional}" and --name "${opts.name}"`, 'KG_ERR_USAGE');
  return name;
};

/** "none" clears an optional value. */
const orNull = (v: string | undefined): string | null | undefined => (v === undefined ? undefined : v === 'none' ? null : v);

/** The changed record on stdout, the confirmation on stderr. */
function printAccount(io: Io, format: Format, a: AccountRecord, done: string): void {
  io.out(renderRecord(format, a));
  io.err(`account "${a.name}" ${done}\n`);
  // Allowed on purpose (ending an account now is a legitimate change), but rarely meant.
  const end = accountEndMs(a);
  if (end !== null && end <= Date.now()) io.err(`keygate: note: end date ${a.endDate} has passed; every credential of "${a.name}" is refused\n`);
}

interface ChangeOpts {
  config: string;
  verbose?: boolean;
  format?: string;
  json?: boolean;
}

export const registerAccount: Register = (program, io, env) => {
  const account = program.command('account').description('manage service accounts');
  examples(account, 'keygate account create --name ci-deployer --role operator', 'keygate account list --format csv', 'keygate account show ci-deployer');

  const create = withVerboseOption(withFormatOption(withConfigOption(account.command('create')), undefined, true))
    .description('create a service account; prints the record')
    .requiredOption('--name <name>', 'unique name: letters, digits, spaces, - and _')
    .option('--description <text>', 'what the account is for')
    .option('--owner <email>', 'who answers for it (e-mail address)')
    .option('--end-date <YYYY-MM-DD>', 'last day it works (it ends at 23:59:59.999 UTC that day)')
    .option('--role <role...>', 'roles (repeat or comma-separate)', collect)
    .option('--scope <scope...>', 'scopes (repeat or comma-separate)', collect)
    .option('--policy <name>', 'rate-limit policy')
    .action(async (opts: ChangeOpts & { name: string; description?: string; owner?: string; endDate?: string; role?: string[]; scope?: string[]; policy?: string }) => {
      const format = formatOf(opts);
      const m = openManagement(opts, io, env);
      const a = await mutate(m, (data) =>
        createAccount(data, { name: opts.name, description: opts.description, owner: opts.owner, endDate: opts.endDate ?? null, roles: opts.role, scopes: opts.scope, policy: opts.policy ?? null }, m.op()),
      );
      m.audit({ event: 'account.created', target: a.name, owner: a.owner, roles: a.roles, scopes: a.scopes, policy: a.policy, endDate: a.endDate });
      printAccount(io, format, a, 'created');
    });
  examples(create, 'keygate account create --name ci-deployer --owner team@example.com --role operator', 'keygate account create --name ops --role admin --end-date 2027-12-31 --format json');

  const list = withFormatOption(withConfigOption(account.command('list')))
    .description('list service accounts')
    .action(async (opts: { config: string; format?: string }) => {
      const format = formatOf(opts);
      const m = openManagement(opts, io, env);
      const data = await readInventory(m);
      const now = Date.now();
      io.out(render(format, accountViews(data, now), ACCOUNT_COLUMNS));
    });
  examples(list, 'keygate account list', 'keygate account list --format csv > accounts.csv');

  const show = withFormatOption(withConfigOption(account.command('show')), undefined, true)
    .description('show one account with its tokens and certificate bindings')
    .argument('[name]')
    .option('--name <name>')
    .action(async (positional: string | undefined, opts: { config: string; name?: string; format?: string; json?: boolean }) => {
      const name = nameOf(positional, opts);
      const format = formatOf(opts);
      const m = openManagement(opts, io, env);
      const [data, used] = await Promise.all([readInventory(m), m.store.readUsage()]);
      const a = findAccount(data, name);
      const detail = accountDetail(a, data, used, m.config, Date.now());
      if (format === 'json') {
        io.out(JSON.stringify(detail, null, 2) + '\n');
        return;
      }
      if (format === 'csv') {
        // One row: the account, with the ids of its tokens and bindings.
        io.out(renderCsv([detail], Object.keys(detail)));
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
  examples(show, 'keygate account show ci-deployer', 'keygate account show ci-deployer --format json | jq .tokens');

  const update = withVerboseOption(withFormatOption(withConfigOption(account.command('update')), undefined, true))
    .description('change an account ("none" clears --end-date and --policy); prints the record')
    .argument('[name]')
    .option('--name <name>')
    .option('--description <text>')
    .option('--owner <email>')
    .option('--end-date <YYYY-MM-DD|none>')
    .option('--role <role...>', 'replace the roles (repeat or comma-separate; "none" for none)', collect)
    .option('--scope <scope...>', 'replace the scopes (repeat or comma-separate; "none" for none)', collect)
    .option('--policy <name|none>')
    .action(async (positional: string | undefined, opts: ChangeOpts & { name?: string; description?: string; owner?: string; endDate?: string; role?: string[]; scope?: string[]; policy?: string }) => {
      const name = nameOf(positional, opts);
      const format = formatOf(opts);
      const list = (v: string[] | undefined) => (v === undefined ? undefined : v.filter((x) => x !== 'none'));
      const patch: AccountPatch = { description: opts.description, owner: opts.owner, endDate: orNull(opts.endDate), roles: list(opts.role), scopes: list(opts.scope), policy: orNull(opts.policy) };
      const changes = Object.keys(patch).filter((k) => patch[k as keyof AccountPatch] !== undefined);
      if (changes.length === 0) throw new CliError('nothing to change: give at least one of --description, --owner, --end-date, --role, --scope, --policy', 'KG_ERR_USAGE');
      const m = openManagement(opts, io, env);
      const a = await mutate(m, (data) => updateAccount(data, name, patch, m.op()));
      m.audit({ event: 'account.updated', target: a.name, changes });
      printAccount(io, format, a, 'updated');
    });
  examples(update, 'keygate account update ci-deployer --end-date 2027-06-30', 'keygate account update ci-deployer --role viewer,operator --policy none');

  for (const [verb, disabled] of [['disable', true], ['enable', false]] as const) {
    const cmd = withVerboseOption(withConfigOption(account.command(verb)))
      .description(disabled ? 'refuse every credential of the account at once (reversible)' : 'admit the account again')
      .argument('[name]')
      .option('--name <name>')
      .action(async (positional: string | undefined, opts: { config: string; verbose?: boolean; name?: string }) => {
        const name = nameOf(positional, opts);
        const m = openManagement(opts, io, env);
        await mutate(m, (data) => updateAccount(data, name, { disabled }, m.op()));
        m.audit({ event: disabled ? 'account.disabled' : 'account.enabled', target: name });
        io.err(`account "${name}" ${disabled ? 'disabled' : 'enabled'}\n`);
      });
    examples(cmd, `keygate account ${verb} ci-deployer`);
  }

  const del = withVerboseOption(withConfigOption(account.command('delete')))
    .description('delete an account and its credentials (refused while it holds active credentials, unless --force)')
    .argument('[name]')
    .option('--name <name>')
    .option('--force', 'delete even with active credentials')
    .action(async (positional: string | undefined, opts: { config: string; verbose?: boolean; name?: string; force?: boolean }) => {
      const name = nameOf(positional, opts);
      const m = openManagement(opts, io, env);
      const r = await mutate(m, (data) => deleteAccount(data, name, opts.force === true, m.op()));
      m.audit({ event: 'account.deleted', target: name, tokens: r.tokens, certificates: r.certificates, force: opts.force === true });
      io.err(`account "${name}" deleted with ${r.tokens.length} token(s) and ${r.certificates.length} certificate binding(s)\n`);
    });
  examples(del, 'keygate account delete old-job', 'keygate account delete old-job --force   # with its active credentials');
};
