// The audit writer (observe/line-writer.ts) and the request series (observe/request-series.ts):
// the two hot-path replacements of sonic-boom and of prom-client's per-request calls must give
// exactly what the slower paths gave — every line whole and in order, the same exposition.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counter, Histogram, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { LineWriter } from '../../src/observe/line-writer.js';
import { KeygateMetrics } from '../../src/observe/metrics.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmpFile(): string {
  const d = mkdtempSync(join(tmpdir(), 'kg-linewriter-'));
  dirs.push(d);
  return join(d, 'sub', 'audit.log'); // the folder is created too
}

describe('LineWriter', () => {
  it('writes every line whole and in order, across many buffers, and flush() waits for them', async () => {
    const file = tmpFile();
    const w = new LineWriter({ file });
    const expected: string[] = [];
    for (let i = 0; i < 5_000; i++) {
      // Multi-byte text too: the bound on a buffer is in bytes, not characters.
      const line = JSON.stringify({ i, path: `/items/${i}`, note: i % 7 === 0 ? 'żółw ✓ 🐢' : 'x'.repeat(i % 300) }) + '\n';
      expected.push(line);
      w.write(line);
    }
    await w.flush();
    expect(readFileSync(file, 'utf8')).toBe(expected.join(''));
    await w.close();
  });

  it('takes a line longer than its buffers on its own, between its neighbours', async () => {
    const file = tmpFile();
    const w = new LineWriter({ file });
    const long = JSON.stringify({ problems: 'p'.repeat(200_000) }) + '\n';
    w.write('{"a":1}\n');
    w.write(long);
    w.write('{"b":2}\n');
    await w.close();
    expect(readFileSync(file, 'utf8')).toBe('{"a":1}\n' + long + '{"b":2}\n');
  });

  it('writes what waits at least every flush interval, without a flush() call', async () => {
    const file = tmpFile();
    const w = new LineWriter({ file, flushIntervalMs: 20 });
    w.write('{"soon":true}\n');
    const deadline = Date.now() + 5_000;
    while (readFileSync(file, 'utf8') === '' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(readFileSync(file, 'utf8')).toBe('{"soon":true}\n');
    await w.close();
  });

  it('appends to an existing file and refuses lines after close', async () => {
    const file = tmpFile();
    const a = new LineWriter({ file });
    a.write('{"n":1}\n');
    await a.close();
    const b = new LineWriter({ file });
    b.write('{"n":2}\n');
    await b.close();
    expect(readFileSync(file, 'utf8')).toBe('{"n":1}\n{"n":2}\n');
    expect(() => b.write('{"n":3}\n')).toThrow(/closed/);
  });

  it('fails at once, with the reason, when the file cannot be opened', () => {
    const file = tmpFile();
    new LineWriter({ file }).close();
    expect(() => new LineWriter({ file: join(file, 'not-a-folder', 'audit.log') })).toThrow(/ENOTDIR|EEXIST/);
  });
});

describe('request series', () => {
  /** The same observations through prom-client's own Counter and Histogram. */
  async function reference(obs: Array<[string, string, string, number, string]>): Promise<string> {
    const r = new Registry();
    const c = new Counter({ name: 'keygate_requests_total', help: 'Requests answered, by account, auth method, outcome and protocol (http/1.1, h2, grpc, websocket).', labelNames: ['account', 'auth', 'outcome', 'protocol'], registers: [r] });
    const h = new Histogram({ name: 'keygate_request_duration_seconds', help: 'Time from request head to response end (for a WebSocket, to the end of the tunnel).', labelNames: ['outcome', 'protocol'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [r] });
    for (const [account, auth, outcome, s, protocol] of obs) {
      c.labels(account, auth, outcome, protocol).inc();
      h.labels(outcome, protocol).observe(s);
    }
    return (await r.getSingleMetricAsString('keygate_requests_total')) + '\n' + (await r.getSingleMetricAsString('keygate_request_duration_seconds'));
  }

  const obs: Array<[string, string, string, number, string]> = [];
  for (let i = 0; i < 300; i++) obs.push([`acct-${i % 4}`, i % 3 ? 'api-key' : 'mtls', i % 5 ? 'allowed' : 'forbidden', (i % 37) / 90 + (i % 2 ? 0.0005 : 0), i % 11 ? 'http/1.1' : 'h2']);

  it('print exactly what prom-client prints for the same requests, scrape after scrape', async () => {
    const r = new Registry();
    const m = new KeygateMetrics(r, { defaultMetrics: false });
    const text = async () => (await r.getSingleMetricAsString('keygate_requests_total')) + '\n' + (await r.getSingleMetricAsString('keygate_request_duration_seconds'));
    for (const [a, auth, o, s, p] of obs.slice(0, 100)) m.observeRequest(a, auth, o as never, s, p as never);
    expect(await text()).toBe(await reference(obs.slice(0, 100)));
    for (const [a, auth, o, s, p] of obs.slice(100)) m.observeRequest(a, auth, o as never, s, p as never);
    expect(await text()).toBe(await reference(obs));
  });

  it('give the JSON that the workers aggregate, labels and values as prom-client has them', async () => {
    const r = new Registry();
    const m = new KeygateMetrics(r, { defaultMetrics: false });
    for (const [a, auth, o, s, p] of obs) m.observeRequest(a, auth, o as never, s, p as never);
    const ref = new Registry();
    const h = new Histogram({ name: 'keygate_request_duration_seconds', help: 'x', labelNames: ['outcome', 'protocol'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [ref] });
    for (const [, , o, s, p] of obs) h.labels(o, p).observe(s);
    const strip = (vs: Array<{ labels: object; value: number; metricName?: string }>) => vs.map((v) => ({ labels: v.labels, value: v.value, metricName: v.metricName })).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
    const mine = (await r.getMetricsAsJSON()).find((x) => x.name === 'keygate_request_duration_seconds')!;
    const theirs = (await ref.getMetricsAsJSON())[0]!;
    expect(mine.type).toBe('histogram');
    expect(strip(mine.values as never)).toEqual(strip(theirs.values as never));
  });
});
