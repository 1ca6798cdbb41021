// The small parts of `workers`: how many (auto = one per core), the replacement back-off, the
// audit relay (whole lines, in order, each naming its worker, in batches rather than one IPC
// message per line), and the IPC message checks (a malformed message is dropped).
import { describe, expect, it } from 'vitest';
import type { RequestAudit } from '../../src/observe/audit.js';
import { RelayAuditSink } from '../../src/workers/audit-relay.js';
import { resolveWorkers } from '../../src/workers/count.js';
import { primaryMessage, workerMessage } from '../../src/workers/protocol.js';
import { restartDelayMs } from '../../src/workers/supervisor.js';

const entry = (i: number, path = `/api/items/${i}`): RequestAudit => ({
  requestId: `r-${i}`,
  account: 'svc',
  credential: 'tok_x',
  auth: 'api-key',
  method: 'GET',
  host: 'api.test',
  path,
  status: 200,
  decision: 'allow',
  reason: 'scope items:read: GET /api/items/**',
  durationMs: 1.5,
  clientIp: '127.0.0.1',
  route: 1,
});

describe('resolveWorkers', () => {
  it('takes a number as it is, and auto as the cores this process may use (at least 1, at most 64)', () => {
    expect(resolveWorkers(3, () => 8)).toBe(3);
    expect(resolveWorkers('auto', () => 2)).toBe(2);
    expect(resolveWorkers('auto', () => 0)).toBe(1);
    expect(resolveWorkers('auto', () => 512)).toBe(64);
  });
});

describe('restartDelayMs', () => {
  it('doubles from 250 ms with each crash in a row, up to 30 s', () => {
    expect([1, 2, 3, 4, 5].map(restartDelayMs)).toEqual([250, 500, 1_000, 2_000, 4_000]);
    expect(restartDelayMs(8)).toBe(30_000);
    expect(restartDelayMs(1_000)).toBe(30_000);
  });
});

describe('RelayAuditSink', () => {
  it('hands whole lines over in order, in batches, each with "worker"', async () => {
    const batches: string[] = [];
    const sink = new RelayAuditSink({ send: async (lines) => void batches.push(lines), worker: 2, maxBytes: 4_096, intervalMs: 60_000 });
    // Paths a caller chose: quotes, newlines and braces must not break a line.
    for (let i = 0; i < 200; i++) sink.request(entry(i, `/api/items/${i}"}\n{"x":"`));
    sink.event({ event: 'config.reloaded', actor: 'keygate', target: 'config', trigger: 'SIGHUP' });
    await sink.close();
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.length).toBeLessThan(60);
    for (const b of batches) expect(b.endsWith('\n')).toBe(true);
    const lines = batches.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(201);
    expect(lines.slice(0, 200).map((l) => l.requestId)).toEqual(Array.from({ length: 200 }, (_, i) => `r-${i}`));
    expect(lines[7]).toMatchObject({ event: 'request', path: '/api/items/7"}\n{"x":"', worker: 2, route: 1 });
    expect(Object.keys(lines[7]!)[0]).toBe('time');
    expect(lines[200]).toMatchObject({ event: 'config.reloaded', trigger: 'SIGHUP', worker: 2 });
  });

  it('flush() sends what is pending; a failed send loses that batch only, never throws', async () => {
    const sent: string[] = [];
    let fail = true;
    const sink = new RelayAuditSink({ send: async (lines) => (fail ? Promise.reject(new Error('closed')) : void sent.push(lines)), worker: 1, intervalMs: 60_000 });
    sink.request(entry(1));
    await expect(sink.flush()).resolves.toBeUndefined();
    fail = false;
    sink.request(entry(2));
    await sink.close();
    expect(sent.join('')).toContain('"requestId":"r-2"');
    expect(sent.join('')).not.toContain('"requestId":"r-1"');
  });
});

describe('IPC messages', () => {
  it('accepts the known shapes and drops anything else', () => {
    const policy = { name: 'p', ratePerMs: 0.01, burst: 5 };
    expect(workerMessage({ kg: 'lease', id: 1, key: 'k', policy, held: 0, want: 1 })).toBeDefined();
    expect(workerMessage({ kg: 'lease', id: 1, key: 'k', policy: { ...policy, burst: 0 }, held: 0, want: 1 })).toBeUndefined();
    expect(workerMessage({ kg: 'lease', id: 1, key: 'k', policy, held: -1, want: 1 })).toBeUndefined();
    expect(workerMessage({ kg: 'audit', lines: 42 })).toBeUndefined();
    expect(workerMessage({ type: 'prom-client:getMetricsRes' })).toBeUndefined();
    expect(workerMessage('NODE_CLUSTER')).toBeUndefined();
    expect(primaryMessage({ kg: 'cluster', ready: true })).toEqual({ kg: 'cluster', ready: true });
    expect(primaryMessage({ kg: 'cluster', ready: 'yes' })).toBeUndefined();
    expect(primaryMessage({ kg: 'lease', id: 1, granted: 2, tokens: 3, atMs: 4, expiresAtMs: Number.NaN })).toBeUndefined();
    expect(primaryMessage({ kg: 'unknown' })).toBeUndefined();
  });
});
