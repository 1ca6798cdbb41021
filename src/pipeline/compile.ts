// Chains compiled once per route kind, at load and on every reload, from the compiled config:
//
//   every request   head (Host, Expect, header names) → misdirected → draining → target (path, route)
//   public route    → forward (no identity headers, nothing recorded)
//   protected route → [maintenance] → identify → expiry → limit → authorize → forward
//
// A public route's chain has no identify, limit or authorize stage, and maintenance is a stage
// only while it is on, so no stage asks at run time which kind of route it is on. The dry run
// (keygate explain, /admin/v1/explain) compiles the very same chains with three parts swapped:
// identify takes the credential by reference, limit looks at the bucket without spending it,
// and the terminal reports instead of forwarding.
//
// The terminal follows the route's upstream protocol (undici for http1, node:http2 sessions for
// h2c and h2), chosen here once; a WebSocket upgrade on any route meets the tunnel terminal
// after the very same stages.
import type { ScopeCatalog } from '../authorize/grants.js';
import { authorizeStage } from '../authorize/authorize-stage.js';
import { forwardTerminal } from '../forward/forward-terminal.js';
import { h2ForwardTerminal } from '../forward/h2-forward.js';
import { tunnelTerminal } from '../forward/tunnel-terminal.js';
import type { Tunnels } from '../forward/tunnel.js';
import type { BodyPolicy } from '../forward/forward-terminal.js';
import type { Upstream } from '../forward/upstream-pools.js';
import { identifyByReference, identifyStage } from '../identify/identify-stage.js';
import { limitStage } from '../ratelimit/limit-stage.js';
import { drainingStage, headStage, maintenanceStage, misdirectedStage, targetStage } from '../request/front-stages.js';
import { compileHeaderScan, type HeaderScan, type UnderscoreRule } from '../request/scan-headers.js';
import type { UsageTracker } from '../store/usage-tracker.js';
import type { Identified, RequestContext, RouteInfo, Routed } from '../vocabulary/context.js';
import type { BucketPolicy, RateLimiter } from '../vocabulary/limits.js';
import type { CredentialIndex, Principal } from '../vocabulary/principal.js';
import type { Stage, Terminal } from '../vocabulary/stage.js';
import { ChainBuilder, type AnyStage, type Chain } from './chain.js';

/** What the chains are compiled from: the compiled config, as runtime/ builds it. */
export interface PipelineSpec {
  readonly routes: ReadonlyArray<{ readonly info: RouteInfo; readonly upstream: Upstream; readonly body: BodyPolicy }>;
  /** listen.headersWithUnderscores. */
  readonly underscores: UnderscoreRule;
  readonly catalog: ScopeCatalog;
  readonly authorizationMode: 'enforce' | 'shadow';
  readonly maintenance: boolean;
  readonly clientAuthPrefix: string;
  readonly environment: string | null;
  readonly failurePolicy: BucketPolicy;
  /** listen.websocket.idleTimeout. */
  readonly tunnelIdleMs: number;
  /** The live credential index. */
  readonly index: () => CredentialIndex;
}

export interface CompiledPipeline {
  /** The one pass over the request headers, with this config's rules. */
  readonly scan: HeaderScan;
  /** Every request; the last one (target) picks the route. */
  readonly front: readonly AnyStage[];
  /** Without the misdirected stage: the dedicated client-certificate port has no SNI to compare. */
  readonly frontForcedMode: readonly AnyStage[];
  /** By route index. */
  readonly chains: readonly Chain[];
  readonly routes: readonly RouteInfo[];
  /** Lower-cased client-auth host prefix: the SNI names of the client-certificate mode. */
  readonly clientAuthPrefix: string;
}

interface Parts {
  identify: Stage<Routed, Identified>;
  expiry: Stage<Identified>;
  limit: ReturnType<typeof limitStage>;
  terminal: (route: PipelineSpec['routes'][number], identity: boolean) => Terminal<Routed>;
  upgrade: (route: PipelineSpec['routes'][number], identity: boolean) => Terminal<Routed>;
  isDraining: () => boolean;
}

function compile(spec: PipelineSpec, parts: Parts): CompiledPipeline {
  const routes = spec.routes.map((r) => r.info);
  const draining = drainingStage(parts.isDraining);
  const target = targetStage(routes);
  const head = headStage({ underscores: spec.underscores });
  const front = ChainBuilder.for<RequestContext>().then(head).then(misdirectedStage(spec.clientAuthPrefix)).then(draining).then(target).list;
  const frontForcedMode = ChainBuilder.for<RequestContext>().then(head).then(draining).then(target).list;
  const authorize = authorizeStage(spec.catalog, spec.authorizationMode);
  const chains = spec.routes.map((route): Chain => {
    if (route.info.public) return ChainBuilder.for<Routed>().end(parts.terminal(route, false), parts.upgrade(route, false));
    let b = ChainBuilder.for<Routed>();
    if (spec.maintenance) b = b.then(maintenanceStage);
    return b.then(parts.identify).then(parts.expiry).then(parts.limit).then(authorize).end(parts.terminal(route, true), parts.upgrade(route, true));
  });
  return { scan: compileHeaderScan({ underscores: spec.underscores }), front, frontForcedMode, chains, routes, clientAuthPrefix: spec.clientAuthPrefix };
}

export interface EnforceParts {
  limiter: RateLimiter;
  /** Failed authentications per client IP. */
  failures: RateLimiter;
  usage: UsageTracker;
  /** Lives as long as the process, so a reload does not repeat the day's warnings. */
  expiry: Stage<Identified>;
  isDraining: () => boolean;
  /** The WebSocket tunnels open now (drain closes them). */
  tunnels: Tunnels;
}

/** The forwarder for the route's upstream protocol. */
function forwarder(route: PipelineSpec['routes'][number], identity: boolean, usage: UsageTracker): Terminal<Routed> {
  const u = route.upstream;
  // The slow-body gate (forward/body-gate.ts) guards the HTTP/1.1 pool's connections; an HTTP/2
  // upstream multiplexes streams on a session, where a trickling body holds no connection.
  const common = { timeoutMs: route.info.timeoutMs, identity, usage, body: route.body };
  return u.protocol === 'http1' ? forwardTerminal({ ...common, upstream: u }) : h2ForwardTerminal({ ...common, upstream: u });
}

export function compilePipeline(spec: PipelineSpec, parts: EnforceParts): CompiledPipeline {
  return compile(spec, {
    identify: identifyStage({ index: spec.index, environment: spec.environment, failures: parts.failures, failurePolicy: spec.failurePolicy }),
    expiry: parts.expiry,
    limit: limitStage(parts.limiter),
    terminal: (route, identity) => forwarder(route, identity, parts.usage),
    upgrade: (route, identity) => tunnelTerminal({ origin: route.upstream.origin, timeoutMs: route.info.timeoutMs, idleMs: spec.tunnelIdleMs, identity, usage: parts.usage, tunnels: parts.tunnels }),
    isDraining: parts.isDraining,
  });
}

export interface DryRunParts {
  /** The limiter whose buckets to look at (the proxy's own in the admin API, a fresh one in the CLI). */
  limiter: RateLimiter;
  accountPrincipal: (account: string) => Principal | undefined;
  expiry: Stage<Identified>;
  isDraining: () => boolean;
}

/** Reports what forwarding would do instead of doing it. */
export const DRY_RUN_TERMINAL: Terminal<Routed> = { kind: 'dry-run', run: (_ctx, done) => done({ ok: true }) };

export function compileDryRun(spec: PipelineSpec, parts: DryRunParts): CompiledPipeline {
  return compile(spec, {
    identify: identifyByReference({ index: spec.index, environment: spec.environment, accountPrincipal: parts.accountPrincipal }),
    expiry: parts.expiry,
    limit: limitStage(parts.limiter, 'peek'),
    terminal: () => DRY_RUN_TERMINAL,
    upgrade: () => DRY_RUN_TERMINAL,
    isDraining: parts.isDraining,
  });
}
