import { buildAll } from '../../runtime/build.js';
import { formatProblem } from '../../config/source.js';
import { UpstreamPools } from '../../forward/upstream-pools.js';
import type { Register } from '../program.js';
import { CliError, withConfigOption } from '../support.js';

export const registerCheck: Register = (program, io, env) => {
  withConfigOption(program.command('check'))
    .description('validate keygate.yaml, the credential file and the TLS files; prints every problem as file:line:col: message')
    .action(async (opts: { config: string }) => {
      const pools = new UpstreamPools();
      try {
        const { built, store, problems } = await buildAll(opts.config, pools, env);
        await store?.close();
        if (!built) {
          for (const p of problems) io.err(`${formatProblem(p)}\n`);
          throw new CliError(`${problems.length} problem${problems.length === 1 ? '' : 's'} found`);
        }
        const d = built.data;
        io.out(
          `${built.loaded.file}: ok — ${built.compiled.routes.length} route(s), ${built.compiled.catalog.names.length} scope(s), ` +
            `${d.accounts.length} account(s), ${d.tokens.length} token(s), ${d.certificates.length} certificate binding(s)\n`,
        );
      } finally {
        await pools.closeAll(true);
      }
    });
};
