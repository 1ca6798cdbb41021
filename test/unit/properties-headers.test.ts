// Properties of the header pass (issue 8): whatever a caller sends, no header that keygate sets
// or strips reaches the upstream under any spelling — letter case, "_" for "-", white space
// around the name, repeated — and the upstream gets exactly one of each header keygate sets.
// A keygate token in any header keygate reads as a credential never travels on.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildUpstreamHeaders } from '../../src/forward/forward-terminal.js';
import { scanRequestHeaders, type UnderscoreRule } from '../../src/request/scan-headers.js';
import { mintToken } from '../../src/store/token-format.js';
import type { Routed } from '../../src/vocabulary/context.js';

const RUNS = 3_000;

/** Headers keygate sets itself or removes: none may reach the upstream as the client sent it. */
const STRIPPED = [
  'x-keygate-account', 'x-keygate-credential', 'x-keygate-auth', 'x-keygate-scopes', 'x-keygate-anything',
  'x-forwarded-client-cert', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-for', 'forwarded', 'x-real-ip',
  'x-api-key', 'x-request-id', 'proxy-authorization', 'expect',
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings',
  'x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url', 'x-rewrite-url',
];
/** Set by keygate on every forwarded request of a protected route: exactly once each. */
const SET_ONCE = ['x-keygate-account', 'x-keygate-credential', 'x-keygate-auth', 'x-keygate-scopes', 'x-request-id', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'host'];

/** How a header is read by the most lenient framework: trimmed, lower case, "_" as "-". */
const canonical = (name: string) => name.trim().toLowerCase().replaceAll('_', '-');

/** One spelling of `name`: each letter in either case, each "-" as "-" or "_", maybe padded. */
const spelling = (name: string) =>
  fc
    .tuple(
      fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }),
      fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }),
      fc.constantFrom('', ' ', '\t'),
      fc.constantFrom('', ' ', '\t'),
    )
    .map(([upper, under, pre, post]) => pre + [...name].map((c, i) => (c === '-' && under[i] ? '_' : upper[i] ? c.toUpperCase() : c)).join('') + post);

const token = mintToken(null);
const value = fc.oneof(fc.constantFrom('root', 'keygate:admin', 'Hash=00;Subject="CN=root"', 'DELETE', '/admin', 'close, x-keep', token, ` ${token} `), fc.string({ maxLength: 12 }));
const forged = fc.constantFrom(...STRIPPED).chain((n) => fc.tuple(spelling(n), value));
const ordinary = fc.tuple(fc.constantFrom('accept', 'x-custom', 'cookie', 'x-keep', 'user-agent'), fc.string({ maxLength: 12 }));
/** A header list, duplicates included, with one Host first as every valid request has. */
const headerList = fc
  .array(fc.oneof({ weight: 3, arbitrary: forged }, { weight: 1, arbitrary: ordinary }), { minLength: 1, maxLength: 24 })
  .chain((hs) => fc.shuffledSubarray(hs, { minLength: hs.length, maxLength: hs.length }))
  .map((hs) => ['Host', 'api.test', ...hs.flat()]);

function protectedCtx(raw: string[], underscores: UnderscoreRule): Routed {
  const headers = scanRequestHeaders(raw, { underscores });
  return {
    headers,
    requestId: 'req-1',
    clientIp: '127.0.0.1',
    host: headers.host ?? '',
    mode: 'api-key',
    auth: 'api-key',
    principal: { id: 'tok_x', account: { name: 'svc' }, grant: { header: 'items:read' } },
  } as unknown as Routed;
}

const names = (flat: readonly string[]) => flat.filter((_, i) => i % 2 === 0);

describe.each(['drop', 'reject', 'allow'] as const)('with headersWithUnderscores: %s', (mode) => {
  it('nothing keygate sets or strips survives the scan, in any spelling', () => {
    fc.assert(
      fc.property(headerList, (raw) => {
        const { forward } = scanRequestHeaders(raw, { underscores: mode });
        const survivors = names(forward).filter((n) => STRIPPED.includes(canonical(n)));
        expect(survivors).toEqual([]);
        expect(names(forward).filter((n) => canonical(n) === 'host')).toEqual(['host']);
      }),
      { numRuns: RUNS },
    );
  });

  it('the upstream gets exactly one of each header keygate sets, and never the token', () => {
    fc.assert(
      fc.property(headerList, (raw) => {
        const out = buildUpstreamHeaders(protectedCtx(raw, mode), true);
        const got = names(out).map(canonical);
        for (const n of SET_ONCE) expect(got.filter((g) => g === n), n).toHaveLength(1);
        // x-forwarded-for is the one value keygate appends to rather than replaces: a chain the
        // client sent travels on, whatever it holds. Every other place a token was sent is gone.
        const viaChain = raw.some((v, i) => i % 2 === 1 && v.includes(token) && canonical(raw[i - 1]!) === 'x-forwarded-for' && raw[i - 1]!.trim() === raw[i - 1] && !raw[i - 1]!.includes('_'));
        if (!viaChain) expect(out.some((v, i) => i % 2 === 1 && v.includes(token)), 'a token value reached the upstream').toBe(false);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('Authorization carrying a keygate token, in any form', () => {
  const form = fc.constantFrom(
    (t: string) => `Bearer ${t}`,
    (t: string) => `bearer  ${t} `,
    (t: string) => `Basic ${t}`,
    (t: string) => `Token ${t}`,
    (t: string) => t,
    (t: string) => `Basic ${Buffer.from(`${t}:`).toString('base64')}`,
    (t: string) => `Basic ${Buffer.from(`user:${t}`).toString('base64')}`,
    (t: string) => `Custom realm="x", key=${t}`,
  );
  it('is the credential it presents, and is never forwarded, with or without x-api-key', () => {
    fc.assert(
      fc.property(form, fc.boolean(), (f, withApiKey) => {
        const t = mintToken(null);
        const raw = ['Host', 'api.test', 'Authorization', f(t), ...(withApiKey ? ['x-api-key', t] : [])];
        const ctx = protectedCtx(raw, 'drop');
        expect(ctx.headers.authToken).toBe(t);
        const out = buildUpstreamHeaders(ctx, true);
        expect(names(out)).not.toContain('authorization');
        expect(out.join('\n').includes(t)).toBe(false);
      }),
      { numRuns: 1_000 },
    );
  });

  it('the twin: an Authorization without a keygate token next to x-api-key is the upstream\'s own and travels on', () => {
    fc.assert(
      fc.property(fc.constantFrom('Basic dXNlcjpwYXNz', 'Bearer upstream-own', 'Token abc', 'Digest username="kg"'), (v) => {
        const out = buildUpstreamHeaders(protectedCtx(['Host', 'api.test', 'x-api-key', token, 'Authorization', v], 'drop'), true);
        expect(out[out.indexOf('authorization') + 1]).toBe(v);
      }),
      { numRuns: 50 },
    );
  });
});
