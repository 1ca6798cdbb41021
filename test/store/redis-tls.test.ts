// rediss:// with a private CA, a client certificate and an ACL user, against a redis-server this
// test starts with TLS (certificates minted here). Each refusal has its twin: no CA, no client
// certificate, a wrong password. The description never names the user or the password.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mintCa, mintClient, mintServer } from '../helpers/pki.js';
import { RedisRateLimiter } from '../../src/ratelimit/redis-limiter.js';
import { createAccount } from '../../src/store/operations.js';
import { RedisStore } from '../../src/store/redis/store.js';
import type { RedisConfig } from '../../src/config/schema.js';
import { TestClock } from './conformance.js';
import { freePort, OwnRedis, redisConfig } from './redis-support.js';

vi.setConfig({ testTimeout: 30_000 });

const PASSWORD = 'pw-' + 'x'.repeat(20);
let redis: OwnRedis;
let tlsPort: number;
let files: { ca: string; cert: string; key: string };
const closeLater: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  const serverCa = await mintCa('redis server CA');
  const clientCa = await mintCa('redis client CA');
  const server = await mintServer(serverCa.authority, ['localhost', '127.0.0.1']);
  const client = await mintClient(clientCa.authority, { commonName: 'keygate' });
  tlsPort = await freePort();
  redis = await OwnRedis.start((dir) => {
    const w = (name: string, pem: string) => (writeFileSync(join(dir, name), pem), join(dir, name));
    files = { ca: w('server-ca.crt', serverCa.certPem), cert: w('client.crt', client.certPem), key: w('client.key', client.keyPem) };
    return ['--tls-port', String(tlsPort), '--tls-cert-file', w('server.crt', server.certPem), '--tls-key-file', w('server.key', server.keyPem), '--tls-ca-cert-file', w('client-ca.crt', clientCa.certPem), '--tls-auth-clients', 'yes', '--user', 'keygate', 'on', `>${PASSWORD}`, '~kgtls:*', '&kgtls:*', '+@all'];
  });
}, 30_000);

afterAll(async () => {
  for (const c of closeLater) await c.close();
  await redis?.stop();
});

/** A refused connection is given up after this: it cannot turn into a success by waiting. */
const REFUSED_WITHIN = '1s';

function config(over: Partial<Record<keyof RedisConfig, unknown>> = {}): RedisConfig {
  // Bounds for a busy machine, not the production defaults: the first limiter call over TLS
  // loads the script, and on a loaded machine it took longer than limitTimeout's 100 ms (the
  // limiter then answers as if Redis were down). This file is about TLS, not latency.
  return redisConfig({ url: `rediss://keygate@127.0.0.1:${tlsPort}/0`, password: PASSWORD, tls: { ca: files.ca, cert: files.cert, key: files.key }, connectTimeout: '5s', commandTimeout: '5s', limitTimeout: '5s', ...over, prefix: 'kgtls:' });
}

async function works(c: RedisConfig): Promise<boolean> {
  const s = new RedisStore(c);
  closeLater.push(s);
  try {
    await s.update((d) => void (d.accounts.some((a) => a.name === 'tls') || createAccount(d, { name: 'tls' }, new TestClock(Date.now()).ctx())));
    return (await s.read()).accounts.some((a) => a.name === 'tls');
  } catch {
    return false;
  } finally {
    await s.close();
  }
}

describe('rediss:// with TLS options and an ACL user', () => {
  it('connects with the CA, the client certificate and the password; the limiter too', async () => {
    expect(await works(config())).toBe(true);
    const l = new RedisRateLimiter(config());
    closeLater.push(l);
    expect(await l.ready()).toBe(true);
    expect(await l.take('k', { name: 'p', ratePerMs: 0.001, burst: 2, per: 'credential', rateText: '1/s' }, Date.now())).toMatchObject({ allowed: true, remaining: 1 });
  });

  it('refuses without the private CA, without a client certificate, with a wrong password', async () => {
    expect(await works(config({ tls: { ca: null, cert: files.cert, key: files.key }, connectTimeout: REFUSED_WITHIN }))).toBe(false);
    expect(await works(config({ tls: { ca: files.ca, cert: null, key: null }, connectTimeout: REFUSED_WITHIN }))).toBe(false);
    expect(await works(config({ password: 'wrong', connectTimeout: REFUSED_WITHIN }))).toBe(false);
    // The user and password from the URL work as well as from the config.
    expect(await works(config({ url: `rediss://keygate:${PASSWORD}@127.0.0.1:${tlsPort}/0`, password: null }))).toBe(true);
  });

  it('names the store without its user or password', () => {
    const s = new RedisStore(config({ url: `rediss://keygate:${PASSWORD}@127.0.0.1:${tlsPort}/0` }));
    closeLater.push(s);
    expect(s.description).toBe(`redis tls 127.0.0.1:${tlsPort}/0`);
    expect(s.description).not.toContain(PASSWORD);
    expect(s.description).not.toContain('keygate');
  });
});
