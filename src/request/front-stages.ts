// ⓪ The request itself, before anyone asks who sent it: is its head one keygate can read
// unambiguously (one valid Host, no refused header name, no Expect it cannot meet: 400 / 417),
// is it addressed to this connection's mode (421), is this instance still taking requests
// (503 while draining), is its target one keygate can read unambiguously and free of tokens
// (400), and which route takes it (404; 503 in maintenance). Every request meets these,
// public routes included. Each refusal is built once: refusing costs no allocation.
import { KeygateError, kgError } from '../errors/keygate-error.js';
import { normalizeTarget } from '../matching/normalize-path.js';
import { findTokenShape } from '../store/token-format.js';
import type { RequestContext, RouteInfo, Routed } from '../vocabulary/context.js';
import { hostName, modeOfName } from '../vocabulary/host-mode.js';
import type { Stage } from '../vocabulary/stage.js';
import { isValidHost } from './host.js';
import { matchRoute } from './routes.js';
import type { UnderscoreRule } from './scan-headers.js';

const HOST_TWICE = new KeygateError('KG_ERR_HOST_INVALID', 'The request carries more than one Host header.');
const HOST_MISSING = new KeygateError('KG_ERR_HOST_INVALID', 'An HTTP/1.1 request must carry a Host header.');
const HOST_INVALID = new KeygateError('KG_ERR_HOST_INVALID', 'The Host header is not a host name or address with an optional port.');
const EXPECTATION = kgError('KG_ERR_EXPECTATION_FAILED');
const UNDERSCORE = kgError('KG_ERR_HEADER_UNDERSCORE');

/**
 * The head as a whole: exactly one Host, valid as host[:port] (HTTP/1.0 may omit it), no header
 * name with "_" when listen.headersWithUnderscores is reject, and no Expect but 100-continue
 * (RFC 9110 §10.1.1: 417). First, so that two Hosts of two modes are a 400, not a 421.
 */
export function headStage(rules: { underscores: UnderscoreRule }): Stage<RequestContext> {
  const rejectUnderscores = rules.underscores === 'reject';
  return {
    name: 'head',
    produced: () => true,
    run: (ctx) => {
      const h = ctx.headers;
      if (h.hostCount !== 1) {
        if (h.hostCount > 1) return HOST_TWICE;
        if (!ctx.x.hostOptional) return HOST_MISSING;
      } else if (!isValidHost(h.host!)) return HOST_INVALID;
      if (rejectUnderscores && h.underscored > 0) return UNDERSCORE;
      if (h.expect !== undefined && h.expect.trim().toLowerCase() !== '100-continue') return EXPECTATION;
      return undefined;
    },
  };
}

const TOKEN_IN_QUERY = kgError('KG_ERR_TOKEN_IN_QUERY');

/** A query string that carries a keygate token, percent-encoded or not (never logged, never forwarded). */
function queryCarriesToken(query: string): boolean {
  if (query.indexOf('kg') === -1 && query.indexOf('%') === -1) return false;
  if (findTokenShape(query) !== undefined) return true;
  if (query.indexOf('%') === -1) return false;
  let decoded: string;
  try {
    decoded = decodeURIComponent(query.replaceAll('+', ' '));
  } catch {
    // Not valid percent-encoding as a whole: decode what can be decoded, byte by byte.
    decoded = query.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  }
  return findTokenShape(decoded) !== undefined;
}

/** The override headers the route lists go back on the forward list; the others stay removed. */
function allowOverrides(ctx: RequestContext, route: RouteInfo): void {
  const held = ctx.headers.overrides;
  if (held === undefined || route.allowOverrideHeaders.length === 0) return;
  for (let i = 0; i < held.length; i += 2) if (route.allowOverrideHeaders.includes(held[i]!)) ctx.headers.forward.push(held[i]!, held[i + 1]!);
}

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

/** One refusal per reason normalize-path gives (a fixed set of sentences). */
const PATH_REFUSALS = new Map<string, KeygateError>();
function pathRefusal(why: string): KeygateError {
  let e = PATH_REFUSALS.get(why);
  if (!e) PATH_REFUSALS.set(why, (e = new KeygateError('KG_ERR_PATH_INVALID', `The request path is refused: ${why}.`)));
  return e;
}

/** Normalizes the path once (what is checked is what is forwarded) and picks the route. */
export function targetStage(routes: readonly RouteInfo[]): Stage<RequestContext, Routed> {
  return {
    name: 'target',
    produced: (ctx) => ctx.route !== undefined,
    run: (ctx) => {
      const t = normalizeTarget(ctx.x.target);
      if (!t.ok) return pathRefusal(t.why);
      ctx.path = t.path;
      if (queryCarriesToken(t.query)) return TOKEN_IN_QUERY;
      ctx.query = t.query;
      const route = matchRoute(routes, t.path);
      if (!route) return kgError('KG_ERR_NO_ROUTE');
      ctx.route = route;
      allowOverrides(ctx, route);
      return undefined;
    },
  };
}

const MAINTENANCE = new KeygateError('KG_ERR_MAINTENANCE', undefined, { 'retry-after': '120' });

/** In the chains of protected routes only, and only while maintenance is on. */
export const maintenanceStage: Stage<Routed> = { name: 'maintenance', produced: () => true, run: () => MAINTENANCE };
