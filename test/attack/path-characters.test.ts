// SPEC §4.6 / issue 8: a path with a character RFC 3986 does not allow raw (`<>"{}|\^` and
// backtick, controls, space) is refused with 400. Servers and frameworks disagree on what such
// a byte means (some decode, some split, some escape), so the path keygate checked would not
// be the path the upstream acts on. The same characters percent-encoded are ordinary data.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { head } from '../helpers/raw-http.js';
import { CODE, SETUP_TIMEOUT_MS, expectForwarded, expectRefusal, probe, settleAudit, startTarget, type Probe, type Target, type Tokens } from './support.js';

let t: Target & { tokens: Tokens };

beforeAll(async () => {
  t = await startTarget({ tokens: { svc: { roles: ['viewer'] } } });
}, SETUP_TIMEOUT_MS);
afterAll(() => t?.env.cleanup());

const get = (path: string) => head(`GET ${path} HTTP/1.1`, 'Host: api.test', `x-api-key: ${t.tokens.svc!.secret}`, 'Connection: close');

// [label, raw character, its percent-encoding]
const PRINTABLE: Array<[string, string, string]> = [
  ['<', '<', '%3C'],
  ['>', '>', '%3E'],
  ['"', '"', '%22'],
  ['{', '{', '%7B'],
  ['}', '}', '%7D'],
  ['|', '|', '%7C'],
  ['\\', '\\', '%5C'],
  ['^', '^', '%5E'],
  ['`', '`', '%60'],
];
// Bytes the HTTP parser itself may refuse before keygate sees the path: either code is right,
// as long as the answer is keygate's own.
const CONTROL: Array<[string, string]> = [
  ['\\x01', '\x01'],
  ['\\x1f', '\x1f'],
  ['DEL', '\x7f'],
  ['TAB', '\t'],
  ['space', ' x'],
];

describe('raw characters RFC 3986 does not allow in a path', () => {
  const probes = new Map<string, Probe>();
  beforeAll(async () => {
    for (const [label, raw] of PRINTABLE) probes.set(label, await probe(t, get(`/api/items/a${raw}b`)));
    for (const [label, raw] of CONTROL) probes.set(label, await probe(t, get(`/api/items/a${raw}b`)));
    await settleAudit(t, [...probes.values()]);
  }, SETUP_TIMEOUT_MS);

  it.each(PRINTABLE)('raw %s is refused with 400 and reaches nothing', async (label) => {
    await expectRefusal(t, probes.get(label)!, { status: 400, code: CODE.pathInvalid });
  });

  it.each(CONTROL)('raw %s is refused with 400 and reaches nothing', async (label) => {
    await expectRefusal(t, probes.get(label)!, { status: 400, code: [CODE.pathInvalid, CODE.malformed] });
  });
});

describe('the twins: the same characters percent-encoded', () => {
  it.each(PRINTABLE.filter(([label]) => label !== '\\'))('%s encoded is served and forwarded encoded', async (_label, _raw, encoded) => {
    const p = await probe(t, get(`/api/items/a${encoded}b`));
    expect(expectForwarded(t, p).url).toBe(`/api/items/a${encoded}b`);
  });

  it('an encoded "\\" stays refused: it is ambiguous, not merely unusual', async () => {
    const p = await probe(t, get('/api/items/a%5Cb'));
    await expectRefusal(t, p, { status: 400, code: CODE.pathInvalid });
  });
});
