// The stage contract (Envoy's filter chain, fastify's hooks): a stage looks at the context and
// either lets the request continue — having written what it learned into the context — or
// returns the refusal. It never writes the response; only the pipeline answers. A terminal is
// the last element of a chain and owns the answer: forward it, report it (dry run), or tunnel.
import type { KeygateError } from '../errors/keygate-error.js';
import type { RequestContext } from './context.js';

/** undefined: continue. */
export type Verdict = KeygateError | undefined;

export type StageName = 'head' | 'misdirected' | 'draining' | 'target' | 'maintenance' | 'identify' | 'expiry' | 'limit' | 'authorize';

export interface Stage<In extends RequestContext, Out extends RequestContext = In> {
  readonly name: StageName;
  /** Decides; when it returns undefined the context has become an `Out`. */
  readonly run: (ctx: In) => Verdict | Promise<Verdict>;
  /**
   * Dry run only: after a refusal, whether the context still carries this stage's output (a
   * known but revoked token still has a principal), so that later stages can be judged too.
   */
  readonly produced?: (ctx: In) => boolean;
  /** Phantom: the type the context has after this stage passed. Never set. */
  readonly out?: Out;
}

/** What a terminal reports back when it is done, for audit and metrics. */
export type TerminalResult =
  | { readonly ok: true }
  /**
   * Answer with this error (an upstream failure); `reason` is the bounded metric label.
   * `inBand`: the terminal already told the client in the answer's own terms (gRPC trailers
   * after a streamed head), so there is nothing left to write, only to record.
   */
  | { readonly ok: false; readonly error: KeygateError; readonly reason: string; readonly inBand?: boolean }
  /** The client left: nothing to answer. */
  | { readonly ok: false; readonly error?: undefined; readonly reason: 'client_closed' };

export interface Terminal<In extends RequestContext> {
  readonly kind: 'forward' | 'dry-run' | 'authorize-only' | 'tunnel';
  readonly run: (ctx: In, done: (r: TerminalResult) => void) => void;
}
