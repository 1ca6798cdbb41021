// The request audit line is serialized by hand for speed; it must stay exactly the JSON that
// JSON.stringify would give, whatever a caller puts in the path or Host header.
import { describe, expect, it } from 'vitest';
import { requestLine, type RequestAudit } from '../../src/observe/audit.js';

const base: RequestAudit = {
  requestId: 'r-1',
  account: 'ci deployer',
  credential: 'tok_abc',
  auth: 'api-key',
  method: 'GET',
  protocol: 'h2',
  host: 'api.test',
  path: '/api/items/1',
  status: 200,
  decision: 'allow',
  reason: 'scope items:read: GET /api/items/*',
  durationMs: 1.234,
  clientIp: '127.0.0.1',
};
const TIME = '2026-11-23T12:00:00.000Z';

describe('requestLine', () => {
  it('is one JSON line holding every field, time and event first', () => {
    const line = requestLine({ ...base, route: 1 }, TIME);
    expect(line.endsWith('}\n')).toBe(true);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect(JSON.parse(line)).toEqual({ time: TIME, event: 'request', ...base, route: 1 });
    expect(Object.keys(JSON.parse(line)).slice(0, 2)).toEqual(['time', 'event']);
  });

  it('names the protocol, http/1.1 when the writer did not say (parser refusals)', () => {
    const { protocol: _, ...withoutProtocol } = base;
    expect(JSON.parse(requestLine(withoutProtocol, TIME)).protocol).toBe('http/1.1');
    expect(JSON.parse(requestLine(base, TIME)).protocol).toBe('h2');
  });

  it('carries a tunnel\'s byte counts and who closed it, and leaves them out otherwise', () => {
    const line = JSON.parse(requestLine({ ...base, protocol: 'websocket', status: 101, bytesFromClient: 12, bytesFromUpstream: 34, closedBy: 'client' }, TIME));
    expect(line).toMatchObject({ protocol: 'websocket', status: 101, bytesFromClient: 12, bytesFromUpstream: 34, closedBy: 'client' });
    const plain = JSON.parse(requestLine(base, TIME));
    expect(['bytesFromClient', 'bytesFromUpstream', 'closedBy'].filter((k) => k in plain)).toEqual([]);
  });

  it('writes null for an unknown caller and leaves out absent route and warning', () => {
    const line = requestLine({ ...base, account: null, credential: null, auth: null, status: 401, decision: 'deny', reason: 'KG_ERR_CREDENTIAL_MISSING' }, TIME);
    const parsed = JSON.parse(line);
    expect(parsed).toMatchObject({ account: null, credential: null, auth: null, status: 401, decision: 'deny' });
    expect('route' in parsed).toBe(false);
    expect('warning' in parsed).toBe(false);
  });

  it.each([
    ['quotes and backslashes', '/a"b\\c'],
    ['a line break', '/a\nb\r\n{"event":"forged"}'],
    ['control characters', '/a\u0000\u0007\u001b'],
    ['a lone surrogate', '/a\ud800b'],
    ['non-ASCII', '/ä/€/😀'],
  ])('keeps a path with %s inside its field', (_what, path) => {
    const line = requestLine({ ...base, path, host: path, warning: path }, TIME);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    const parsed = JSON.parse(line);
    expect(parsed.path).toBe(JSON.parse(JSON.stringify(path)));
    expect(parsed.host).toBe(parsed.path);
    expect(parsed.warning).toBe(parsed.path);
    expect(parsed.event).toBe('request');
  });
});
