// ⓪ The request itself, before anyone asks who sent it: is it addressed to this connection's
// mode (421), is this instance still taking requests (503 while draining), is its path one
// keygate can read unambiguously (400), and which route takes it (404; 503 in maintenance).
// Every request meets these, public routes included.
import { KeygateError, kgError } from '../errors/keygate-error.js';
import { normalizeTarget } from '../matching/normalize-path.js';
import type { RequestContext, RouteInfo, Routed } from '../vocabulary/context.js';
import { hostName, modeOfName } from '../vocabulary/host-mode.js';
import type { Stage } from '../vocabulary/stage.js';
import { matchRoute } from './routes.js';

/**
 * The Host (HTTP/2: :authority) must name a host of the connection's own mode: a token client
 * cannot reach a client-certificate host by overriding Host, nor the reverse. The dedicated
 * client-certificate port has no SNI to compare with and skips this stage.
 */
export function misdirectedStage(clientAuthPrefix: string): Stage<RequestContext> {
  return {
    name: 'misdirected',
    produced: () => true,
    run: (ctx) => (ctx.host && modeOfName(hostName(ctx.host), clientAuthPrefix) !== ctx.mode ? kgError('KG_ERR_MISDIRECTED') : undefined),
  };
}

const SHUTTING_DOWN = new KeygateError('KG_ERR_SHUTTING_DOWN', undefined, { 'retry-after': '5', connection: 'close' });

export function drainingStage(isDraining: () => boolean): Stage<RequestContext> {
  return { name: 'draining', produced: () => true, run: () => (isDraining() ? SHUTTING_DOWN : undefined) };
}

/** Normalizes the path once (what is checked is what is forwarded) and picks the route. */
export function targetStage(routes: readonly RouteInfo[]): Stage<RequestContext, Routed> {
  return {
    name: 'target',
    produced: (ctx) => ctx.route !== undefined,
    run: (ctx) => {
      const t = normalizeTarget(ctx.x.target);
      if (!t.ok) return new KeygateError('KG_ERR_PATH_INVALID', `The request path is refused: ${t.why}.`);
      ctx.path = t.path;
      ctx.query = t.query;
      ctx.route = matchRoute(routes, t.path);
      return ctx.route ? undefined : kgError('KG_ERR_NO_ROUTE');
    },
  };
}

const MAINTENANCE = new KeygateError('KG_ERR_MAINTENANCE', undefined, { 'retry-after': '120' });

/** In the chains of protected routes only, and only while maintenance is on. */
export const maintenanceStage: Stage<Routed> = { name: 'maintenance', produced: () => true, run: () => MAINTENANCE };
