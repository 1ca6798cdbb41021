// What `keygate explain` and /admin/v1/explain run against: the compiled config, the
// credential index, and the request chains compiled in dry-run mode from the same spec the
// proxy's own chains come from.
import { expiryStage } from '../identify/expiry-notice.js';
import { compileDryRun, type CompiledPipeline } from '../pipeline/compile.js';
import type { RateLimiter } from '../vocabulary/limits.js';
import { pipelineSpec, type CompiledConfig } from './compile.js';
import type { LiveIndex } from './credential-index.js';

export interface ExplainRuntime {
  readonly compiled: CompiledConfig;
  readonly index: LiveIndex;
  /** The chains compiled in dry-run mode. */
  readonly pipeline: CompiledPipeline;
}

/** `limiter`: whose buckets a dry run looks at (the proxy's own, or a fresh one in the CLI). */
export function explainRuntime(compiled: CompiledConfig, index: LiveIndex, limiter: RateLimiter, isDraining: () => boolean = () => false): ExplainRuntime {
  const pipeline = compileDryRun(pipelineSpec(compiled, () => index), { limiter, accountPrincipal: (a) => index.accountPrincipal(a), expiry: expiryStage(), isDraining });
  return { compiled, index, pipeline };
}
