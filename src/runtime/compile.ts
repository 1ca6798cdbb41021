// Build once, run many: what a request needs from keygate.yaml is compiled here — routes with
// their upstream pools, the scope catalog, rate policies — into one immutable value. A reload
// compiles a new one; the credential index (runtime/credential-index.ts) is built against it.
import { ScopeCatalog } from '../authorize/grants.js';
import type { KeygateConfig } from '../config/schema.js';
import type { ValuePath } from '../config/source.js';
import type { BodyPolicy } from '../forward/forward-terminal.js';
import type { Upstream, UpstreamPools } from '../forward/upstream-pools.js';
import type { PipelineSpec } from '../pipeline/compile.js';
import { routeInfo } from '../request/routes.js';
import type { RouteInfo } from '../vocabulary/context.js';
import type { BucketPolicy } from '../vocabulary/limits.js';
import type { CredentialIndex } from '../vocabulary/principal.js';

export interface Problem {
  path: ValuePath;
  message: string;
}

export interface CompiledConfig {
  readonly config: KeygateConfig;
  readonly routes: ReadonlyArray<{ readonly info: RouteInfo; readonly upstream: Upstream; readonly body: BodyPolicy }>;
  readonly catalog: ScopeCatalog;
  readonly policies: ReadonlyMap<string, BucketPolicy>;
  readonly authFailurePolicy: BucketPolicy;
  /** Lower-cased client-auth host prefix. */
  readonly clientAuthPrefix: string;
}

export function compileConfig(config: KeygateConfig, pools: UpstreamPools): { compiled?: CompiledConfig; problems: Problem[] } {
  const problems: Problem[] = [];
  const { catalog, problems: ruleProblems } = ScopeCatalog.compile(config.scopes);
  for (const [scope, i, message] of ruleProblems) problems.push({ path: i < 0 ? ['scopes', scope] : ['scopes', scope, i], message });
  const policies = new Map<string, BucketPolicy>();
  for (const [name, p] of Object.entries(config.policies)) {
    policies.set(name, { name, ratePerMs: p.rate.perMs, burst: p.burst ?? Math.max(1, Math.ceil(p.rate.perMs * 1000)), per: p.per, rateText: p.rate.text });
  }
  const af = config.authFailures;
  const authFailurePolicy: BucketPolicy = { name: 'auth-failures', ratePerMs: af.rate.perMs, burst: af.burst, per: 'credential', rateText: af.rate.text };
  // Pools connect lazily: compiling for `keygate check` opens no socket.
  const routes = config.routes.map((r, i) => ({
    info: routeInfo(i, r),
    upstream: pools.get(new URL(r.upstream).origin, r.connections, r.protocol),
    body: { bufferBytes: r.bufferBodyBytes, streamingSlots: r.streamingUploads ?? Math.max(1, Math.floor(r.connections / 2)) },
  }));
  if (problems.length) return { problems };
  return {
    compiled: { config, routes, catalog, policies, authFailurePolicy, clientAuthPrefix: config.listen.clientAuth.hostPrefix.toLowerCase() },
    problems,
  };
}

/** What the request chains are compiled from (pipeline/compile.ts), for this compiled config. */
export function pipelineSpec(compiled: CompiledConfig, index: () => CredentialIndex): PipelineSpec {
  const c = compiled.config;
  return {
    routes: compiled.routes,
    underscores: c.listen.headersWithUnderscores,
    catalog: compiled.catalog,
    authorizationMode: c.authorization.mode,
    maintenance: c.maintenance,
    clientAuthPrefix: compiled.clientAuthPrefix,
    environment: c.environment,
    failurePolicy: compiled.authFailurePolicy,
    tunnelIdleMs: c.listen.websocket.idleTimeout,
    index,
  };
}
