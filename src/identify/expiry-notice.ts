// The early warning: a credential within credentials.warnBefore of its end (its own expiry or
// its account's end date) gets `keygate-credential-expires` on every answer, and the audit
// line a warning once per credential per day, so an owner sees it coming in their logs.
import type { Identified } from '../vocabulary/context.js';
import type { Stage } from '../vocabulary/stage.js';

const DAY_MS = 86_400_000;
/** Bounded: a day's worth of warnings for this many credentials, then it starts over. */
const MAX_WARNED = 100_000;

export function expiryStage(): Stage<Identified> {
  const warnedDay = new Map<string, number>();
  return {
    name: 'expiry',
    run: (ctx) => {
      const c = ctx.principal;
      if (c.warnFromMs === null || ctx.nowMs < c.warnFromMs) return undefined;
      ctx.expiresHeader = c.endsHeader!;
      const day = Math.floor(ctx.nowMs / DAY_MS);
      if (warnedDay.get(c.id) !== day) {
        if (warnedDay.size > MAX_WARNED) warnedDay.clear();
        warnedDay.set(c.id, day);
        ctx.warning = `credential ends ${c.endsHeader}`;
      }
      return undefined;
    },
  };
}
