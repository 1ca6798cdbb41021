// keygate check: keygate.yaml, the TLS files and the credential store, checked the way `serve`
// would load them, without opening a socket. Every problem is `file:line:col: message` on
// stderr (or in the JSON report), then a count; exit 1 when there is any.
import { existsSync } from 'node:fs';
import { buildAll } from '../../runtime/build.js';
import { formatProblem, SourceError } from '../../config/source.js';
import { UpstreamPools } from '../../forward/upstream-pools.js';
import type { Register } from '../program.js';
import { CliError, examples, formatOf, withConfigOption, withFormatOption } from '../support.js';

export const registerCheck: Register = (program, io, env) => {
  const check = withFormatOption(withConfigOption(program.command('check')), ['table', 'json'])
    .description('validate keygate.yaml, the credential store and the TLS files; prints every problem as file:line:col: message')
    .action(async (opts: { config: string; format?: string }) => {
      const format = formatOf(opts, ['table', 'json']);
      const pools = new UpstreamPools();
      try {
        const { built, store, problems } = await buildAll(opts.config, pools, env);
        await store?.close();
        if (!built) {
          if (format === 'table') throw new SourceError(problems);
          io.out(JSON.stringify({ config: opts.config, ok: false, problems: problems.map((p) => ({ ...p, text: formatProblem(p) })) }, null, 2) + '\n');
          throw new CliError(`${problems.length} problem${problems.length === 1 ? '' : 's'} found`, 'KG_ERR_CONFIG_INVALID');
        }
        const d = built.data;
        const cfg = built.loaded.config;
        // A file store that does not exist yet is an empty inventory that serve starts with (the
        // first `account create` writes it): fine, but worth saying, since a wrong store.file
        // looks just the same.
        const noFile = !cfg.store.redis && !existsSync(cfg.store.file);
        if (format === 'json') {
          const report = {
            config: built.loaded.file,
            ok: true,
            store: cfg.store.redis ? { kind: 'redis' } : { kind: 'file', file: cfg.store.file, exists: !noFile },
            routes: built.compiled.routes.length,
            scopes: built.compiled.catalog.names.length,
            accounts: d.accounts.length,
            tokens: d.tokens.length,
            certificates: d.certificates.length,
            problems: [],
          };
          io.out(JSON.stringify(report, null, 2) + '\n');
          return;
        }
        io.out(
          `${built.loaded.file}: ok — ${built.compiled.routes.length} route(s), ${built.compiled.catalog.names.length} scope(s), ` +
            (noFile
              ? `no credential file yet (${cfg.store.file}: keygate account create writes it)\n`
              : `${d.accounts.length} account(s), ${d.tokens.length} token(s), ${d.certificates.length} certificate binding(s)\n`),
        );
      } finally {
        await pools.closeAll(true);
      }
    });
  examples(check, 'keygate check', 'keygate check -c /etc/keygate/keygate.yaml', 'keygate check --format json | jq .problems');
};
