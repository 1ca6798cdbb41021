// One limit for the fleet: a policy of 5/s with a burst of 10, requests spread round-robin over
// three real replicas on one Redis, admits at most burst + rate × t (+1, the tolerance
// docs/fleet.md states) however the requests fall. Its refused twin: three replicas on the file
// store, each with buckets of its own, admit more than one bucket allows under the same spread
// (about three times as much when each replica gets more than the rate).
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestEnv, runCli, type ChildProxy, type TestEnv } from '../helpers/harness.js';
import { Client, deletePrefix, fleetPrefix, onRedis, startReplicas, FLEET_SETUP_MS } from './fleet-support.js';

vi.setConfig({ testTimeout: 120_000 });

// A low rate, so that even a busy machine sends more than it admits.
const RATE = 5;
const BURST = 10;
/** docs/fleet.md "Rate limits": one request more than burst + rate × t, for floating-point rounding. */
const TOLERANCE = 1;
const prefix = fleetPrefix();
let env: TestEnv;
let client: Client;
let fileConfig: string;
type Fleet = { replicas: ChildProxy[]; metered: string; warm: string };
const fleets: Record<'redis' | 'file', Fleet> = {} as never;

/** Two tokens in the store `configFile` names: one on the measured policy, one for warming connections up. */
async function tokens(configFile: string): Promise<{ metered: string; warm: string }> {
  const cli = (args: string[]) => runCli([...args, '-c', configFile], { timeoutMs: 60_000 });
  const a = await cli(['account', 'create', '--name', 'metered', '--role', 'viewer']);
  expect(a.code, a.stderr).toBe(0);
  const [metered, warm] = await Promise.all([cli(['token', 'create', '--account', 'metered', '--policy', 'fleet', '--json']), cli(['token', 'create', '--account', 'metered', '--json'])]);
  expect(metered.code, metered.stderr).toBe(0);
  expect(warm.code, warm.stderr).toBe(0);
  return { metered: (JSON.parse(metered.stdout) as { token: string }).token, warm: (JSON.parse(warm.stdout) as { token: string }).token };
}

beforeAll(async () => {
  env = await createTestEnv();
  const policies = { policies: { fleet: { rate: `${RATE}/s`, burst: BURST } } };
  // A generous limitTimeout: this test is about one bucket shared, not about a slow Redis on a
  // busy machine (a check past limitTimeout counts as a failure and, failing closed, a 503).
  env.writeConfig({ ...policies, ...onRedis(prefix, { limitTimeout: '5s' }) });
  fileConfig = join(env.dir, 'keygate-file.yaml');
  env.writeConfig({ ...policies, store: { file: 'credentials.yaml' } }, fileConfig);
  const [onRedisStore, onFile] = await Promise.all([tokens(env.configFile), tokens(fileConfig)]);
  const [redisReplicas, fileReplicas] = await Promise.all([startReplicas(env, 3), startReplicas(env, 3, { configFile: fileConfig })]);
  fleets.redis = { replicas: redisReplicas, ...onRedisStore };
  fleets.file = { replicas: fileReplicas, ...onFile };
  client = new Client(env);
}, FLEET_SETUP_MS);

afterAll(async () => {
  client?.destroy();
  await env?.cleanup();
  await deletePrefix(prefix);
});

const CALLERS = 6;

/**
 * Six callers, each sending to the next replica in turn, for at least 1.5 s and until 15
 * requests were refused (at most 20 s); counts by replica and answer. The connections are
 * opened first with another token, so that the handshakes are not part of the measured time.
 */
async function spread(fleet: Fleet) {
  await Promise.all(fleet.replicas.flatMap((r) => Array.from({ length: CALLERS }, () => client.call(r.port, fleet.warm))));
  const admitted = fleet.replicas.map(() => 0);
  let refused = 0;
  const other: string[] = [];
  let retryAfter: string | undefined;
  let next = 0;
  const t0 = performance.now();
  const going = () => {
    const ms = performance.now() - t0;
    return ms < 1_500 || (refused < 15 && ms < 20_000);
  };
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (going()) {
        const i = next++ % fleet.replicas.length;
        const r = await client.call(fleet.replicas[i]!.port, fleet.metered);
        if (r.status === 200) admitted[i]!++;
        else if (r.status === 429) {
          refused++;
          retryAfter = r.headers['retry-after'] as string;
        } else other.push(`${r.status} ${r.code ?? ''}`);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const total = admitted.reduce((a, b) => a + b, 0);
  return { admitted, total, refused, other, seconds, bound: BURST + RATE * seconds + TOLERANCE, retryAfter };
}

describe('one limit across three replicas', () => {
  it('store.redis: a spread over A, B and C admits at most burst + rate × t; its file-store twin admits more, about 3×', async () => {
    const shared = await spread(fleets.redis);
    const own = await spread(fleets.file);
    const line = (what: string, s: typeof shared) =>
      `${what}: admitted ${s.total} (${s.admitted.join(' + ')}) of ${s.total + s.refused} in ${s.seconds.toFixed(2)} s; one bucket's bound burst + rate × t + ${TOLERANCE} = ${s.bound.toFixed(1)}`;
    console.info(`${line('store.redis', shared)}\n${line('file store', own)} (${(own.total / shared.total).toFixed(1)}× the Redis fleet)`);

    expect(shared.other).toEqual([]);
    expect(own.other).toEqual([]);
    // The limit was reached (a spread that never hit it would prove nothing) ...
    expect(shared.refused).toBeGreaterThanOrEqual(15);
    expect(shared.retryAfter).toMatch(/^\d+$/);
    // ... and held across the three: never more than one bucket's worth.
    expect(shared.total).toBeLessThanOrEqual(shared.bound);
    // Not refusing everything either: the burst and most of the refill were admitted.
    expect(shared.total).toBeGreaterThanOrEqual(BURST + Math.floor(RATE * shared.seconds * 0.5));
    // Every replica took from the one bucket.
    for (const n of shared.admitted) expect(n).toBeGreaterThan(0);

    // Refused twin: each file-store replica has its own bucket (each admits at least its own
    // burst), so the fleet admits more than one bucket allows — the drift a shared limit exists
    // to prevent.
    for (const n of own.admitted) expect(n).toBeGreaterThanOrEqual(BURST);
    expect(own.total).toBeGreaterThan(own.bound);
  });
});
