// keygate explain [--account NAME] [--token ID] [--format table|json] METHOD PATH
// Which rule allows or denies a request, and which rate policy applies — the request taken
// through the proxy's own compiled chains in dry-run mode, built from keygate.yaml and the
// credential store the way `keygate check` builds them: no socket is opened and no TLS file is
// read, so it runs anywhere the two files are. Rate buckets are this command's own (full): the
// running proxy's are in its memory; /admin/v1/explain looks at those.
// Exit 0 when the request would be allowed, 1 when denied; failures to explain at all use the
// exit table of every command (docs/cli.md): 2 usage, 5 store unavailable, …
import { explainRequest, formatExplanation } from '../../admin/explain.js';
import { SourceError } from '../../config/source.js';
import { UpstreamPools } from '../../forward/upstream-pools.js';
import { MemoryRateLimiter } from '../../ratelimit/limiter.js';
import { compileLoaded, indexStore } from '../../runtime/build.js';
import { explainRuntime } from '../../runtime/explain-runtime.js';
import type { Register } from '../program.js';
import { CliError, examples, formatOf, loadOrThrow, openStore, requireStore, withConfigOption, withFormatOption } from '../support.js';

export const registerExplain: Register = (program, io, env) => {
  const explain = withFormatOption(withConfigOption(program.command('explain')), ['table', 'json'], true)
    .description('which rule allows or denies a request, and which rate policy applies (exit 0 allowed, 1 denied)')
    .argument('<method>', 'HTTP method, e.g. GET')
    .argument('<path>', 'request path, e.g. /api/v1/items/42')
    .option('--account <name>', 'the service account making the request (not needed with --token)')
    .option('--token <id>', 'one of its tokens (its own scopes, policy and state); names the account by itself')
    .action(async (method: string, path: string, opts: { config: string; account?: string; token?: string; format?: string; json?: boolean }) => {
      const format = formatOf(opts, ['table', 'json']);
      if (opts.account === undefined && opts.token === undefined) throw new CliError('name the caller: --account NAME, --token ID, or both', 'KG_ERR_USAGE');
      const loaded = loadOrThrow(opts.config, env);
      requireStore(loaded.config);
      // Pools are created lazily and never connect here; they are closed all the same.
      const pools = new UpstreamPools();
      const limiter = new MemoryRateLimiter(16);
      try {
        const { compiled, problems: compileProblems } = compileLoaded(loaded, pools);
        if (!compiled) throw new SourceError(compileProblems);
        const store = openStore(loaded.config);
        // A store that cannot be read at all ends the command as store unavailable (exit 5),
        // not as a denial: exit 1 is explain's answer.
        await store.read();
        const { index, problems: storeProblems } = await indexStore(compiled, store);
        if (!index) throw new SourceError(storeProblems);
        const e = await explainRequest(explainRuntime(compiled, index, limiter), { account: opts.account, token: opts.token, method, path }, Date.now());
        io.out(format === 'json' ? JSON.stringify(e, null, 2) + '\n' : formatExplanation(e));
        if (e.refusal) throw new CliError(`denied: ${e.refusal.status} ${e.refusal.code}`);
      } finally {
        await pools.closeAll(true);
        await limiter.close();
      }
    });
  examples(
    explain,
    'keygate explain --account ci-deployer POST /api/v1/certificates',
    'keygate explain --token tok_5De9uufOrDC5qC DELETE /api/v1/certificates/42',
    'keygate explain --token tok_5De9uufOrDC5qC --format json GET /api/v1/certificates | jq .authorization',
  );
};
