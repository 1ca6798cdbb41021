// One catalog of answers, documented in docs/errors.md: this test keeps the two in step (a code
// added to the catalog and not documented, or documented and not in the catalog, fails) and
// holds the problem+json writer to its shape, over a real HTTP exchange.
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS, type ErrorCode } from '../../src/errors/catalog.js';
import { KeygateError, kgError } from '../../src/errors/keygate-error.js';
import { PROBLEM_TYPE_BASE, problemBody } from '../../src/errors/problem.js';
import { writeProblem } from '../../src/transport/problem.js';

const DOC = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const CODES = Object.keys(ERRORS) as ErrorCode[];

/** Rows of the summary table: code → [status, title]. */
function summaryRows(): Map<string, { status: number; title: string }> {
  const rows = new Map<string, { status: number; title: string }>();
  for (const m of DOC.matchAll(/^\| `(KG_ERR_[A-Z_]+)` \| (\d{3}) \| (.+?) \|$/gm)) {
    expect(rows.has(m[1]!), `${m[1]} listed twice in the summary`).toBe(false);
    rows.set(m[1]!, { status: Number(m[2]), title: m[3]! });
  }
  return rows;
}

/** Sections `### \`KG_ERR_…\``: code → the text up to the next heading. */
function sections(): Map<string, string> {
  const out = new Map<string, string>();
  const parts = DOC.split(/^#{2,3} /m);
  for (const part of parts) {
    const m = /^`(KG_ERR_[A-Z_]+)`\n/.exec(part);
    if (!m) continue;
    expect(out.has(m[1]!), `${m[1]} has two sections`).toBe(false);
    out.set(m[1]!, part.slice(m[0].length));
  }
  return out;
}

/** Markdown paragraphs are wrapped; compare text with whitespace runs made single spaces. */
const flat = (s: string) => s.replace(/\s+/g, ' ').trim();

describe('catalog ↔ docs/errors.md', () => {
  it('documents every catalog code in the summary with its status and title', () => {
    const rows = summaryRows();
    for (const code of CODES) {
      const row = rows.get(code);
      expect(row, `${code} is missing from the summary table of docs/errors.md`).toBeDefined();
      expect(row!.status, `${code} status`).toBe(ERRORS[code].status);
      expect(row!.title, `${code} title`).toBe(ERRORS[code].title);
    }
  });

  it('gives every catalog code a section with its status, when it happens and its hint', () => {
    const secs = sections();
    for (const code of CODES) {
      const text = secs.get(code);
      expect(text, `${code} has no "### \`${code}\`" section in docs/errors.md`).toBeDefined();
      const body = flat(text!);
      expect(body, `${code} section status`).toContain(`**Status:** ${ERRORS[code].status}.`);
      expect(body, `${code} section says when`).toMatch(/\*\*When:\*\* \S/);
      expect(body, `${code} section hint`).toContain(`**Hint:** ${ERRORS[code].hint}`);
    }
  });

  it('names no code that the catalog does not have', () => {
    const mentioned = new Set(DOC.match(/KG_ERR_[A-Z_]+/g) ?? []);
    // `KG_ERR_…` in prose is the family, not a code.
    mentioned.delete('KG_ERR_');
    const unknown = [...mentioned].filter((c) => !(c in ERRORS));
    expect(unknown).toEqual([]);
    expect([...summaryRows().keys()].filter((c) => !(c in ERRORS))).toEqual([]);
    expect([...sections().keys()].filter((c) => !(c in ERRORS))).toEqual([]);
  });

  it('documents every field of the problem body', () => {
    for (const field of ['type', 'title', 'status', 'detail', 'hint', 'code', 'requestId']) expect(DOC).toContain(`| \`${field}\` |`);
  });

  it('documents the headers that go with 401, 429 and 503', () => {
    expect(DOC).toContain('WWW-Authenticate');
    expect(DOC).toContain('Bearer realm="keygate"');
    expect(DOC).toContain('Bearer realm="keygate", error="invalid_token"');
    expect(DOC).toContain('ClientCertificate realm="keygate"');
    expect(DOC).toContain('Retry-After');
  });
});

describe('the catalog itself', () => {
  it('uses stable, well-formed codes and bounded metric reasons derived from them', () => {
    for (const code of CODES) {
      expect(code).toMatch(/^KG_ERR_[A-Z]+(?:_[A-Z]+)*$/);
      // The reason is a metric label: lowercase, derived from the code, so it is bounded and unique.
      expect(ERRORS[code].reason).toBe(code.slice('KG_ERR_'.length).toLowerCase());
    }
  });

  it('answers with error statuses only, and the SPEC §5 status for each family', () => {
    for (const code of CODES) expect(ERRORS[code].status, code).toBeGreaterThanOrEqual(400);
    const byStatus = (s: number) => CODES.filter((c) => ERRORS[c].status === s);
    expect(byStatus(401).every((c) => /^KG_ERR_(CREDENTIAL|TOKEN|ACCOUNT|CERT)_/.test(c))).toBe(true);
    expect(ERRORS.KG_ERR_PATH_INVALID.status).toBe(400);
    expect(ERRORS.KG_ERR_MISDIRECTED.status).toBe(421);
    expect(ERRORS.KG_ERR_SCOPE_DENIED.status).toBe(403);
    expect(ERRORS.KG_ERR_RATE_LIMITED.status).toBe(429);
    expect(ERRORS.KG_ERR_UPSTREAM_UNAVAILABLE.status).toBe(502);
    expect(ERRORS.KG_ERR_UPSTREAM_TIMEOUT.status).toBe(504);
    expect(ERRORS.KG_ERR_MAINTENANCE.status).toBe(503);
    expect(ERRORS.KG_ERR_SHUTTING_DOWN.status).toBe(503);
  });

  it('has a title, a default detail and a hint for every code, each one line of plain text', () => {
    for (const code of CODES) {
      const { title, detail, hint } = ERRORS[code];
      for (const text of [title, detail, hint]) {
        expect(text.length, code).toBeGreaterThan(3);
        expect(text, code).not.toMatch(/[\r\n\t]/);
        expect(text, code).toBe(text.trim());
      }
      expect(detail, `${code} detail is a sentence`).toMatch(/\.$/);
      expect(hint, `${code} hint is a sentence`).toMatch(/[.)]$/);
    }
  });
});

describe('problemBody', () => {
  const FIELDS = ['type', 'title', 'status', 'detail', 'hint', 'code', 'requestId'];

  it.each(CODES)('%s: exactly the documented fields, from the catalog', (code) => {
    const body = JSON.parse(problemBody(kgError(code), 'req-123')) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(FIELDS);
    expect(body).toEqual({
      type: PROBLEM_TYPE_BASE + code,
      title: ERRORS[code].title,
      status: ERRORS[code].status,
      detail: ERRORS[code].detail,
      hint: ERRORS[code].hint,
      code,
      requestId: 'req-123',
    });
    expect(body.type).toBe(`urn:keygate:error:${code}`);
  });

  it('carries nothing secret-looking: no token, hash, stack trace or file path', () => {
    for (const code of CODES) {
      const text = problemBody(kgError(code), 'req-1');
      expect(text, code).not.toMatch(/kg_[0-9A-Za-z]{10,}/);
      expect(text, code).not.toMatch(/[0-9a-f]{32,}/i);
      expect(text, code).not.toMatch(/\bat .+:\d+:\d+/);
      expect(text, code).not.toMatch(/(?:^|[\s"])\/(?:home|etc|tmp|var|usr|root)\//);
    }
  });

  it('uses the request-specific detail when one is given, and the catalog for the rest', () => {
    const err = new KeygateError('KG_ERR_SCOPE_DENIED', 'POST /api/items needs one of these scopes: items:write.');
    const body = JSON.parse(problemBody(err, 'r')) as Record<string, unknown>;
    expect(body.detail).toBe('POST /api/items needs one of these scopes: items:write.');
    expect(body.title).toBe(ERRORS.KG_ERR_SCOPE_DENIED.title);
    expect(body.status).toBe(403);
  });

  it('escapes whatever the detail holds: the body stays one valid JSON object', () => {
    const err = new KeygateError('KG_ERR_PATH_INVALID', 'quote " backslash \\ newline \n </script>');
    const body = JSON.parse(problemBody(err, 'r')) as Record<string, unknown>;
    expect(body.detail).toBe('quote " backslash \\ newline \n </script>');
  });
});

describe('writeProblem, over a real HTTP exchange', () => {
  let server: Server;
  let port: number;
  let handler: (res: ServerResponse) => void = () => undefined;

  beforeAll(async () => {
    server = createServer((_req, res) => handler(res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  function get(): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end();
    });
  }

  it('answers with the status, problem+json, no-store, the request id and the error headers', async () => {
    handler = (res) => writeProblem(res, new KeygateError('KG_ERR_RATE_LIMITED', undefined, { 'retry-after': '7' }), 'req-42', { 'ratelimit-limit': 20 });
    const r = await get();
    expect(r.status).toBe(429);
    expect(r.headers['content-type']).toBe('application/problem+json');
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.headers['x-request-id']).toBe('req-42');
    expect(r.headers['retry-after']).toBe('7');
    expect(r.headers['ratelimit-limit']).toBe('20');
    expect(Number(r.headers['content-length'])).toBe(Buffer.byteLength(r.body));
    expect(JSON.parse(r.body)).toMatchObject({ code: 'KG_ERR_RATE_LIMITED', status: 429, requestId: 'req-42' });
  });

  it('sends WWW-Authenticate when the error carries it', async () => {
    handler = (res) => writeProblem(res, new KeygateError('KG_ERR_TOKEN_REVOKED', undefined, { 'www-authenticate': 'Bearer realm="keygate", error="invalid_token"' }), 'r');
    const r = await get();
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="keygate", error="invalid_token"');
  });

  it('cuts the connection instead of appending a problem to a response already started', async () => {
    handler = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      setTimeout(() => writeProblem(res, kgError('KG_ERR_UPSTREAM_UNAVAILABLE'), 'r'), 20);
    };
    // The client must see the response fail, never a body that ends as if it were complete.
    await expect(get()).rejects.toThrow(/aborted|socket hang up|ECONNRESET/i);
  });
});
