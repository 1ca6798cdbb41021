// The inventory against a running proxy: last use is recorded in memory on the request path,
// flushed in batches (store.usageFlushInterval: 200ms here) to the usage file, and shown by
// `token list` and `account show`; JSON and CSV exports parse and hold no secret or hash.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FileStore } from '../../src/store/file/file-store.js';
import { createTestEnv, eventually, request, type ChildProxy, type TestEnv } from '../helpers/harness.js';

// Steps run CLI children (a node start-up each): allow for a busy machine.
vi.setConfig({ testTimeout: 60_000 });

let env: TestEnv;
let proxy: ChildProxy;
let used: { secret: string; id: string };
let idle: { secret: string; id: string };

beforeAll(async () => {
  env = await createTestEnv();
  used = await env.token('inventoried', { roles: ['viewer'], label: 'in use' });
  idle = await env.token('inventoried', { label: 'idle' });
  proxy = await env.startChild();
}, 120_000); // several CLI children: slow on a busy machine
afterAll(() => env.cleanup());

function csvRows(text: string): string[][] {
  // The inventory's cells hold no quote, comma or line break here, so a split is exact.
  return text
    .trimEnd()
    .split('\r\n')
    .map((line) => line.split(','));
}

describe('inventory with last use', () => {
  it('records last use from proxied requests, in batches, and lists it', async () => {
    const before = Date.now();
    let lastSent = before;
    for (let i = 0; i < 5; i++) {
      lastSent = Date.now();
      const res = await request({ port: proxy.port, ca: env.serverCa.certPem, path: '/api/items', headers: { 'x-api-key': used.secret } });
      expect(res.status).toBe(200);
    }
    const store = new FileStore(env.credentialsFile);
    // Nothing is written per request: the batch lands within a couple of flush intervals. The
    // five can land in two batches on a busy machine; wait for the last one's, so that every
    // listing below reads the same time.
    await eventually(async () => ((await store.readUsage())[used.id] ?? 0) >= lastSent - 1, 3_000);
    expect((await store.readUsage())[idle.id]).toBeUndefined();

    const json = await env.cli(['token', 'list', '--account', 'inventoried', '--format', 'json']);
    expect(json.code, json.stderr).toBe(0);
    const rows = JSON.parse(json.stdout) as Array<Record<string, string | null>>;
    const u = rows.find((r) => r.id === used.id)!;
    expect(Date.parse(u.lastUsedAt!)).toBeGreaterThanOrEqual(before - 1);
    expect(Date.parse(u.lastUsedAt!)).toBeLessThanOrEqual(Date.now());
    expect(rows.find((r) => r.id === idle.id)!.lastUsedAt).toBeNull();

    const csv = await env.cli(['token', 'list', '--account', 'inventoried', '--format', 'csv']);
    const [header, ...lines] = csvRows(csv.stdout);
    const col = (name: string) => header!.indexOf(name);
    expect(lines).toHaveLength(2);
    const usedLine = lines.find((l) => l[col('id')] === used.id)!;
    expect(usedLine[col('lastUsedAt')]).toBe(u.lastUsedAt);
    expect(usedLine[col('label')]).toBe('in use');
    expect(usedLine[col('createdAt')]).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect(lines.find((l) => l[col('id')] === idle.id)![col('lastUsedAt')]).toBe('');

    const show = await env.cli(['account', 'show', 'inventoried', '--json']);
    expect(JSON.parse(show.stdout).tokens.find((t: { id: string }) => t.id === used.id).lastUsedAt).toBe(u.lastUsedAt);

    const hashes = [...readFileSync(env.credentialsFile, 'utf8').matchAll(/"hash":"([0-9a-f]{64})"/g)].map((m) => m[1]!);
    for (const out of [json.stdout, csv.stdout, show.stdout]) {
      for (const s of [used.secret, idle.secret, ...hashes]) expect(out).not.toContain(s);
    }
  });

  it('a revoked token keeps its history: revoked at, reason and last use', async () => {
    expect((await env.cli(['token', 'revoke', used.id, '--reason', 'rotation finished'])).code).toBe(0);
    const r = await env.cli(['token', 'list', '--status', 'revoked', '--format', 'json']);
    const [row] = JSON.parse(r.stdout) as Array<Record<string, string | null>>;
    expect(row).toMatchObject({ id: used.id, status: 'revoked', revokeReason: 'rotation finished' });
    expect(row!.lastUsedAt).not.toBeNull();
    expect(row!.revokedAt).not.toBeNull();
  });
});
