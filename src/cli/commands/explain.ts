// keygate explain [--account NAME] [--token ID] [--format table|json] METHOD PATH
// keygate explain --batch FILE|-
// Which rule allows or denies a request, and which rate policy applies — the request taken
// through the proxy's own compiled chains in dry-run mode, built from keygate.yaml and the
// credential store the way `keygate check` builds them: no socket is opened and no TLS file is
// read, so it runs anywhere the two files are. Rate buckets are this command's own (full): the
// running proxy's are in its memory; /admin/v1/explain looks at those.
// Exit 0 when the request would be allowed, 1 when denied; failures to explain at all use the
// exit table of every command (docs/cli.md): 2 usage, 5 store unavailable, …
//
// --batch reads requests as JSON lines ({"account"?, "token"?, "method", "path"}) and writes one
// JSON line per request, in order: the explanation (as --format json prints it), or {"line",
// "error"} for a line that cannot be explained. One start-up and one compiled runtime for any
// number of requests. Exit 0 when every line was explained, whatever the decisions; 2 when one
// was not.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { explainRequest, formatExplanation } from '../../admin/explain.js';
import { SourceError } from '../../config/source.js';
import { KeygateFault } from '../../errors/fault.js';
import { UpstreamPools } from '../../forward/upstream-pools.js';
import { MemoryRateLimiter } from '../../ratelimit/limiter.js';
import { compileLoaded, indexStore } from '../../runtime/build.js';
import { explainRuntime, type ExplainRuntime } from '../../runtime/explain-runtime.js';
import type { Register } from '../program.js';
import { CliError, examples, formatOf, loadOrThrow, openStore, requireStore, withConfigOption, withFormatOption, type Io } from '../support.js';

/** A batch line longer than this is refused (it cannot be a request worth explaining). */
const MAX_LINE = 64 * 1024;

export const registerExplain: Register = (program, io, env) => {
  const explain = withFormatOption(withConfigOption(program.command('explain')), ['table', 'json'], true)
    .description('which rule allows or denies a request, and which rate policy applies (exit 0 allowed, 1 denied)')
    .argument('[method]', 'HTTP method, e.g. GET')
    .argument('[path]', 'request path, e.g. /api/v1/items/42')
    .option('--account <name>', 'the service account making the request (not needed with --token)')
    .option('--token <id>', 'one of its tokens (its own scopes, policy and state); names the account by itself')
    .option('--batch <file>', 'explain many requests: JSON lines {"account","token","method","path"} from FILE (- for stdin), one JSON line out for each')
    .action(async (method: string | undefined, path: string | undefined, opts: { config: string; account?: string; token?: string; format?: string; json?: boolean; batch?: string }) => {
      const format = formatOf(opts, ['table', 'json']);
      if (opts.batch !== undefined) {
        if (method !== undefined || opts.account !== undefined || opts.token !== undefined) throw new CliError('--batch takes the requests from its file: give no METHOD, PATH, --account or --token', 'KG_ERR_USAGE');
      } else {
        // Worded as the option parser words them: METHOD and PATH are optional only for --batch.
        if (method === undefined) throw new CliError("missing required argument 'method' (or --batch FILE)", 'KG_ERR_USAGE');
        if (path === undefined) throw new CliError("missing required argument 'path'", 'KG_ERR_USAGE');
        if (opts.account === undefined && opts.token === undefined) throw new CliError('name the caller: --account NAME, --token ID, or both', 'KG_ERR_USAGE');
      }
      const loaded = loadOrThrow(opts.config, env);
      requireStore(loaded.config);
      // Pools are created lazily and never connect here; they are closed all the same.
      const pools = new UpstreamPools();
      const limiter = new MemoryRateLimiter(16);
      try {
        const { compiled, problems: compileProblems } = compileLoaded(loaded, pools);
        if (!compiled) throw new SourceError(compileProblems);
        const store = openStore(loaded.config, io);
        // A store that cannot be read at all ends the command as store unavailable (exit 5),
        // not as a denial: exit 1 is explain's answer.
        await store.read();
        const { index, problems: storeProblems } = await indexStore(compiled, store);
        if (!index) throw new SourceError(storeProblems);
        const rt = explainRuntime(compiled, index, limiter);
        if (opts.batch !== undefined) return await explainBatch(rt, opts.batch, io);
        const e = await explainRequest(rt, { account: opts.account, token: opts.token, method: method!, path: path! }, Date.now());
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
    'keygate explain --batch requests.jsonl > explained.jsonl',
  );
};

/** One batch line as a request, or why it is not one. */
function parseLine(text: string): { account?: string; token?: string; method: string; path: string } | string {
  if (text.length > MAX_LINE) return `the line is longer than ${MAX_LINE} characters`;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'the line is not JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'the line is not a JSON object';
  const o = v as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !['account', 'token', 'method', 'path'].includes(k));
  if (unknown.length) return `unknown field "${unknown[0]}": a request has account, token (optional), method and path`;
  for (const k of ['method', 'path'] as const) if (typeof o[k] !== 'string') return `"${k}" must be a string`;
  for (const k of ['account', 'token'] as const) if (o[k] !== undefined && typeof o[k] !== 'string') return `"${k}" must be a string`;
  if (o.account === undefined && o.token === undefined) return 'a request names an account, a token, or both';
  return { method: o.method as string, path: o.path as string, ...(o.account !== undefined ? { account: o.account as string } : {}), ...(o.token !== undefined ? { token: o.token as string } : {}) };
}

async function explainBatch(rt: ExplainRuntime, file: string, io: Io): Promise<void> {
  const fromFile = file === '-' ? undefined : createReadStream(file);
  const input: NodeJS.ReadableStream = fromFile ?? io.in ?? process.stdin;
  const opened = new Promise<void>((resolve, reject) => {
    if (!fromFile) return resolve();
    fromFile.once('open', () => resolve());
    fromFile.once('error', (err: NodeJS.ErrnoException) => reject(new CliError(`cannot read ${file}: ${err.code === 'ENOENT' ? 'file not found' : err.message}`)));
  });
  await opened;
  let line = 0;
  let failed = 0;
  for await (const text of createInterface({ input, crlfDelay: Infinity })) {
    line++;
    if (text.trim() === '') continue;
    const req = parseLine(text);
    if (typeof req === 'string') {
      failed++;
      io.out(JSON.stringify({ line, error: { code: 'KG_ERR_EXPLAIN_INPUT', detail: req } }) + '\n');
      continue;
    }
    try {
      io.out(JSON.stringify(await explainRequest(rt, req, Date.now())) + '\n');
    } catch (err) {
      if (!(err instanceof KeygateFault) || err.code !== 'KG_ERR_EXPLAIN_INPUT') throw err;
      failed++;
      io.out(JSON.stringify({ line, error: { code: err.code, detail: err.message } }) + '\n');
    }
  }
  if (failed) throw new CliError(`${failed} of the requests could not be explained (their lines say why)`, 'KG_ERR_EXPLAIN_INPUT');
}
