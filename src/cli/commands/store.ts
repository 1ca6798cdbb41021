// keygate store export [--out FILE] | store import FILE [--on-conflict fail|keep|replace]
import { readFile } from 'node:fs/promises';
import { SourceError } from '../../config/source.js';
import { writeFileAtomic } from '../../store/file/atomic-file.js';
import { CONFLICT_RULES, exportInventory, importInventory, parseExport, type ConflictRule } from '../../store/transfer.js';
import type { CredentialStore } from '../../store/types.js';
import type { Register } from '../program.js';
import { CliError, examples, formatOf, openManagement, requireStore, withConfigOption, withFormatOption, withVerboseOption } from '../support.js';

export const registerStore: Register = (program, io, env) => {
  const store = program.command('store').description('move the whole inventory out of and into the configured store');
  examples(store, 'keygate store export --out inventory.yaml', 'keygate store import inventory.yaml --on-conflict keep');

  // The export is its own format (YAML that `store import` reads back), so no --format here.
  const exp = withVerboseOption(withConfigOption(store.command('export')))
    .description('write every account, token hash and certificate binding (never a secret) as YAML')
    .option('--out <file>', 'write to this file (mode 0600) instead of stdout')
    .action(async (opts: { config: string; verbose?: boolean; out?: string }) => {
      const m = openManagement(opts, io, env);
      requireStore(m.config);
      const s: CredentialStore = m.store;
      try {
        const { text, data } = await exportInventory(s);
        if (opts.out) {
          await writeFileAtomic(opts.out, text).catch((err: NodeJS.ErrnoException) => {
            throw new CliError(`cannot write ${opts.out}: ${err.code ?? err.message}`);
          });
        } else io.out(text);
        m.audit({ event: 'store.exported', target: s.description, accounts: data.accounts.length, tokens: data.tokens.length, certificates: data.certificates.length, ...(opts.out && { file: opts.out }) });
        io.err(`exported ${data.accounts.length} accounts, ${data.tokens.length} tokens, ${data.certificates.length} certificate bindings${opts.out ? ` to ${opts.out}` : ''}\n`);
      } finally {
        await s.close();
      }
    });
  examples(exp, 'keygate store export --out inventory.yaml', 'keygate store export -c old.yaml | keygate store import -c new.yaml /dev/stdin');

  const imp = withVerboseOption(withFormatOption(withConfigOption(store.command('import')), ['table', 'json']))
    .description('add the records of an export to the configured store (idempotent)')
    .argument('<file>', 'an export written by `keygate store export`')
    .option('--on-conflict <rule>', 'a record that differs from the one in the store: fail (import nothing), keep (the store\'s) or replace (with the export\'s)', 'fail')
    .action(async (file: string, opts: { config: string; verbose?: boolean; onConflict: string; format?: string }) => {
      const format = formatOf(opts, ['table', 'json']);
      if (!(CONFLICT_RULES as readonly string[]).includes(opts.onConflict)) throw new CliError(`unknown --on-conflict "${opts.onConflict}": use fail, keep or replace`, 'KG_ERR_USAGE');
      const rule = opts.onConflict as ConflictRule;
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new CliError(`cannot read ${file}: ${code === 'ENOENT' ? 'file not found' : (code ?? (err as Error).message)}`, code === 'ENOENT' ? 'KG_ERR_NOT_FOUND' : 'KG_ERR_BAD_REQUEST');
      }
      const { doc, problems } = parseExport(file, text);
      if (!doc) throw new SourceError(problems);
      const m = openManagement(opts, io, env);
      const s: CredentialStore = m.store;
      try {
        const report = await importInventory(s, doc.inventory, { rule, actor: m.actor });
        for (const c of report.conflicts) io.err(`keygate: conflict: ${c.kind} ${c.key}: ${c.reason}\n`);
        if (!report.applied) throw new CliError(`${report.conflicts.length} conflict(s): nothing imported (use --on-conflict keep or replace to decide)`, 'KG_ERR_CONFLICT');
        const a = report.added;
        m.audit({ event: 'store.imported', target: s.description, file, rule, added: a, unchanged: report.unchanged, replaced: report.replaced, conflicts: report.conflicts.length });
        if (format === 'json') io.out(JSON.stringify({ file, rule, added: a, unchanged: report.unchanged, replaced: report.replaced, kept: report.conflicts.length }, null, 2) + '\n');
        else io.out(`added ${a.accounts} accounts, ${a.tokens} tokens, ${a.certificates} certificate bindings; ${report.unchanged} unchanged, ${report.replaced} replaced, ${report.conflicts.length} kept as they were\n`);
      } finally {
        await s.close();
      }
    });
  examples(imp, 'keygate store import inventory.yaml', 'keygate store import inventory.yaml --on-conflict keep --format json');
};
