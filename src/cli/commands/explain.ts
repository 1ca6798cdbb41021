// keygate explain -c FILE --account NAME [--token ID] [--json] METHOD PATH
// Which rule allows or denies a request, and which rate policy applies — the request taken
// through the proxy's own compiled chains in dry-run mode, built from keygate.yaml and the
// credential store the way `keygate check` builds them: no socket is opened and no TLS file is
// read, so it runs anywhere the two files are. Rate buckets are this command's own (full): the
// running proxy's are in its memory; /admin/v1/explain looks at those.
// Exit 0 when the request would be allowed, 1 when denied, 2 on usage errors.
import { explainRequest, formatExplanation } from '../../admin/explain.js';
import { loadConfig } from '../../config/load.js';
import { SourceError } from '../../config/source.js';
import { UpstreamPools } from '../../forward/upstream-pools.js';
import { MemoryRateLimiter } from '../../ratelimit/limiter.js';
import { compileLoaded, indexStore } from '../../runtime/build.js';
import { explainRuntime } from '../../runtime/explain-runtime.js';
import type { Register } from '../program.js';
import { CliError, openStore, withConfigOption } from '../support.js';

export const registerExplain: Register = (program, io, env) => {
  withConfigOption(program.command('explain'))
    .description('which rule allows or denies a request, and which rate policy applies (exit 0 allowed, 1 denied, 2 usage)')
    .argument('<method>', 'HTTP method, e.g. GET')
    .argument('<path>', 'request path, e.g. /api/v1/items/42')
    .requiredOption('--account <name>', 'the service account making the request')
    .option('--token <id>', "one of the account's tokens (its own scopes, policy and state)")
    .option('--json', 'JSON output')
    .action(async (method: string, path: string, opts: { config: string; account: string; token?: string; json?: boolean }) => {
      const { loaded, problems } = loadConfig(opts.config, env);
      if (!loaded) throw new SourceError(problems);
      // Pools are created lazily and never connect here; they are closed all the same.
      const pools = new UpstreamPools();
      const limiter = new MemoryRateLimiter(16);
      try {
        const { compiled, problems: compileProblems } = compileLoaded(loaded, pools);
        if (!compiled) throw new SourceError(compileProblems);
        const { index, problems: storeProblems } = await indexStore(compiled, openStore(loaded.config));
        if (!index) throw new SourceError(storeProblems);
        const e = await explainRequest(explainRuntime(compiled, index, limiter), { account: opts.account, token: opts.token, method, path }, Date.now());
        io.out(opts.json ? JSON.stringify(e, null, 2) + '\n' : formatExplanation(e));
        if (e.refusal) throw new CliError(`denied: ${e.refusal.status} ${e.refusal.code}`);
      } finally {
        await pools.closeAll(true);
        await limiter.close();
      }
    });
};
