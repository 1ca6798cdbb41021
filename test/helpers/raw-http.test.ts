// The raw-HTTP helper's response parser decides what the attack tests see; it is checked here
// on bytes written by hand, so that a parser bug cannot pass for a keygate bug or hide one.
import { describe, expect, it } from 'vitest';
import { parseResponses } from './raw-http.js';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('parseResponses', () => {
  it('reads Content-Length bodies, keeps duplicate headers, and splits pipelined responses', () => {
    const { all, rest } = parseResponses(b('HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n'), false);
    expect(all.map((r) => [r.status, r.reason, r.text(), r.complete])).toEqual([
      [200, 'OK', 'hi', true],
      [404, 'Not Found', '', true],
    ]);
    expect(all[0]!.headers('set-cookie')).toEqual(['a=1', 'b=2']);
    expect(all[0]!.header('SET-COOKIE')).toBe('a=1');
    expect(rest.length).toBe(0);
  });

  it('reads chunked bodies with extensions and trailers', () => {
    const { all } = parseResponses(b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nx-trailer: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n'), false);
    expect(all.map((r) => [r.status, r.text(), r.complete])).toEqual([
      [200, 'abcde', true],
      [204, '', true],
    ]);
  });

  it('sees a 100 Continue as a response of its own, before the final one', () => {
    const { all } = parseResponses(b('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\ncontent-length: 1\r\n\r\nx'), false);
    expect(all.map((r) => r.status)).toEqual([100, 401]);
  });

  it('marks a body cut short as incomplete, and one framed by the close as complete only once closed', () => {
    expect(parseResponses(b('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'), true).all[0]!.complete).toBe(false);
    expect(parseResponses(b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab'), true).all[0]!.complete).toBe(false);
    expect(parseResponses(b('HTTP/1.0 200 OK\r\n\r\nuntil close'), false).all[0]!.complete).toBe(false);
    const closed = parseResponses(b('HTTP/1.0 200 OK\r\n\r\nuntil close'), true).all[0]!;
    expect([closed.version, closed.text(), closed.complete]).toEqual(['HTTP/1.0', 'until close', true]);
  });

  it('stops at bytes that are not a status line, and leaves them in rest', () => {
    const { all, rest } = parseResponses(b('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n\x15\x03\x03\x00\x02\x02\x28'), true);
    expect(all).toHaveLength(1);
    expect(rest.length).toBe(7);
    expect(parseResponses(b('garbage\r\n\r\n'), true).all).toEqual([]);
  });
});
