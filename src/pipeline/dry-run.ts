// The dry run: a request's context taken through the compiled chains without a connection, a
// secret or an upstream (pipeline/compile.ts compileDryRun). Unlike the request path it does
// not stop at the first refusal: every stage whose input is still there is judged, so one run
// names every problem an operator has to fix. The first refusal is what the proxy would answer.
import { randomUUID } from 'node:crypto';
import type { ErrorCode } from '../errors/catalog.js';
import type { KeygateError } from '../errors/keygate-error.js';
import type { CredentialReference, RequestContext } from '../vocabulary/context.js';
import type { Exchange } from '../vocabulary/exchange.js';
import type { StageName } from '../vocabulary/stage.js';
import type { AnyStage } from './chain.js';
import type { CompiledPipeline } from './compile.js';

export interface StageVerdict {
  readonly stage: StageName | 'forward';
  /** not-reached: an earlier refusal left this stage without its input. */
  readonly verdict: 'pass' | 'deny' | 'not-reached';
  readonly status?: number;
  readonly code?: ErrorCode;
  readonly detail?: string;
}

export interface DryRunResult {
  readonly ctx: RequestContext;
  readonly stages: readonly StageVerdict[];
  /** The first refusal: what the proxy would answer. */
  readonly refusal: KeygateError | undefined;
}

function unsupported(): never {
  throw new Error('a dry run has no connection');
}

/** An exchange that carries a method and a target and nothing else. */
function dryExchange(method: string, target: string): Exchange {
  return {
    protocol: 'http/1.1',
    method,
    target,
    rawHeaders: [],
    tls: undefined,
    get body(): never {
      return unsupported();
    },
    expectsContinue: false,
    hostOptional: true,
    statusCode: 0,
    headersSent: false,
    completed: false,
    aborted: false,
    respond: unsupported,
    sendContinue: unsupported,
    writeHead: unsupported,
    write: unsupported,
    onDrain: unsupported,
    end: unsupported,
    destroy: unsupported,
    onClose: unsupported,
  };
}

export async function dryRun(p: CompiledPipeline, request: { method: string; target: string; reference: CredentialReference; nowMs: number }): Promise<DryRunResult> {
  const ctx: RequestContext = {
    x: dryExchange(request.method, request.target),
    startedAt: 0,
    nowMs: request.nowMs,
    requestId: randomUUID(),
    clientIp: '',
    mode: 'api-key',
    host: '',
    method: request.method,
    headers: p.scan([]),
    reference: request.reference,
    path: request.target.split('?', 1)[0]!,
    query: '',
    reason: '',
  };
  const stages: StageVerdict[] = [];
  let refusal: KeygateError | undefined;
  let stopped = false;
  const judge = async (list: readonly AnyStage[]) => {
    for (const s of list) {
      if (stopped) {
        stages.push({ stage: s.name, verdict: 'not-reached' });
        continue;
      }
      const v = await s.run(ctx);
      if (!v) {
        stages.push({ stage: s.name, verdict: 'pass' });
        continue;
      }
      stages.push({ stage: s.name, verdict: 'deny', status: v.status, code: v.code, detail: v.detail });
      refusal ??= v;
      if (!(s.produced?.(ctx) ?? false)) stopped = true;
    }
  };
  await judge(p.front);
  const chain = ctx.route ? p.chains[ctx.route.index] : undefined;
  if (chain) {
    await judge(chain.stages);
    stages.push({ stage: 'forward', verdict: refusal ? 'not-reached' : 'pass' });
  }
  return { ctx, stages, refusal };
}
