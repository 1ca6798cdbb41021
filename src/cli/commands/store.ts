// keygate store export [--out FILE] | store import FILE [--on-conflict fail|keep|replace]
import { readFile } from 'node:fs/promises';
import { SourceError } from '../../config/source.js';
import { writeFileAtomic } from '../../store/file/atomic-file.js';
import { CONFLICT_RULES, exportInventory, importInventory, parseExport, type ConflictRule } from '../../store/transfer.js';
import type { CredentialStore } from '../../store/types.js';
import type { Register } from '../program.js';
import { CliError, openManagement, withConfigOption } from '../support.js';

export const registerStore: Register = (program, io, env) => {
  const store = program.command('store').description('move the whole inventory out of and into the configured store');

  withConfigOption(store.command('export'))
    .description('write every account, token hash and certificate binding (never a secret) as YAML')
    .option('--out <file>', 'write to this file (mode 0600) instead of stdout')
    .action(async (opts: { config: string; out?: string }) => {
      const m = openManagement(opts.config, io, env);
      const s: CredentialStore = m.store;
      try {
        const { text, data } = await exportInventory(s);
        if (opts.out) await writeFileAtomic(opts.out, text);
        else io.out(text);
        m.audit({ event: 'store.exported', target: s.description, accounts: data.accounts.length, tokens: data.tokens.length, certificates: data.certificates.length, ...(opts.out && { file: opts.out }) });
        if (opts.out) io.err(`exported ${data.accounts.length} accounts, ${data.tokens.length} tokens, ${data.certificates.length} certificate bindings to ${opts.out}\n`);
      } finally {
        await s.close();
      }
    });

  withConfigOption(store.command('import'))
    .description('add the records of an export to the configured store (idempotent)')
    .argument('<file>', 'an export written by `keygate store export`')
    .option('--on-conflict <rule>', 'a record that differs from the one in the store: fail (import nothing), keep (the store\'s) or replace (with the export\'s)', 'fail')
    .action(async (file: string, opts: { config: string; onConflict: string }) => {
      if (!(CONFLICT_RULES as readonly string[]).includes(opts.onConflict)) throw new CliError(`unknown --on-conflict "${opts.onConflict}": use fail, keep or replace`, 'KG_ERR_USAGE');
      const rule = opts.onConflict as ConflictRule;
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      const { doc, problems } = parseExport(file, text);
      if (!doc) throw new SourceError(problems);
      const m = openManagement(opts.config, io, env);
      const s: CredentialStore = m.store;
      try {
        const report = await importInventory(s, doc.inventory, { rule, actor: m.actor });
        for (const c of report.conflicts) io.err(`keygate: conflict: ${c.kind} ${c.key}: ${c.reason}\n`);
        if (!report.applied) throw new CliError(`${report.conflicts.length} conflict(s): nothing imported (use --on-conflict keep or replace to decide)`);
        const a = report.added;
        m.audit({ event: 'store.imported', target: s.description, file, rule, added: a, unchanged: report.unchanged, replaced: report.replaced, conflicts: report.conflicts.length });
        io.out(`added ${a.accounts} accounts, ${a.tokens} tokens, ${a.certificates} certificate bindings; ${report.unchanged} unchanged, ${report.replaced} replaced, ${report.conflicts.length} kept as they were\n`);
      } finally {
        await s.close();
      }
    });
};
