// The chain builder checks the order of stages at compile time: a stage that reads what
// another produces only fits after it. `npm test` type-checks this file (tsc over test/), so
// each @ts-expect-error below is itself an assertion: if the builder ever accepted the wrong
// order, the directive would be unused and the type check would fail.
import { describe, expect, it } from 'vitest';
import { authorizeStage } from '../../src/authorize/authorize-stage.js';
import { ScopeCatalog } from '../../src/authorize/grants.js';
import { expiryStage } from '../../src/identify/expiry-notice.js';
import { ChainBuilder } from '../../src/pipeline/chain.js';
import { DRY_RUN_TERMINAL } from '../../src/pipeline/compile.js';
import { MemoryRateLimiter } from '../../src/ratelimit/limiter.js';
import { limitStage } from '../../src/ratelimit/limit-stage.js';
import { maintenanceStage } from '../../src/request/front-stages.js';
import type { Identified, Routed } from '../../src/vocabulary/context.js';
import type { Stage } from '../../src/vocabulary/stage.js';

const identify: Stage<Routed, Identified> = { name: 'identify', run: () => undefined };
const { catalog } = ScopeCatalog.compile({});
const authorize = authorizeStage(catalog, 'enforce');
const limit = limitStage(new MemoryRateLimiter(1));

describe('chain order is checked by the compiler', () => {
  it('accepts identify → expiry → limit → authorize', () => {
    const chain = ChainBuilder.for<Routed>().then(maintenanceStage).then(identify).then(expiryStage()).then(limit).then(authorize).end(DRY_RUN_TERMINAL);
    expect(chain.stages.map((s) => s.name)).toEqual(['maintenance', 'identify', 'expiry', 'limit', 'authorize']);
  });

  it('refuses authorize or limit before identify, and authorize before limit', () => {
    // @ts-expect-error authorize needs the principal (identify) and the limit answer (limit)
    ChainBuilder.for<Routed>().then(authorize);
    // @ts-expect-error limit needs the principal
    ChainBuilder.for<Routed>().then(limit);
    // @ts-expect-error authorize runs after limit, so that a 403 carries RateLimit-*
    ChainBuilder.for<Routed>().then(identify).then(authorize);
    // @ts-expect-error the early warning reads the principal
    ChainBuilder.for<Routed>().then(expiryStage());
    expect(true).toBe(true);
  });
});
