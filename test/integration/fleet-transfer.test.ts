// Moving an inventory from the file store to Redis, as an operator does it: `keygate store
// export` on the file-store config, `keygate store import` (twice: the second changes nothing)
// on a store.redis config, then a replica on Redis admits the exported token and client
// certificate, refuses the exported revocation, and refuses a token created in the file store
// after the export. No secret is in the export, in Redis, or in anything the CLI or the
// replica wrote.
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestEnv, MTLS_HOST, request, runCli, type ChildProxy, type CliResult, type TestEnv } from '../helpers/harness.js';
import { mintClient, type Issued } from '../helpers/pki.js';
import { Client, deletePrefix, fleetPrefix, onRedis, secretsLeaked, FLEET_SETUP_MS } from './fleet-support.js';

// Several CLI runs and replica starts per test: minutes on a busy two-core machine, still bounded.
vi.setConfig({ testTimeout: 120_000 });

const prefix = fleetPrefix();
let env: TestEnv;
let client: Client;
let redisConfig: string;
let exportFile: string;
let replica: ChildProxy;
let certificate: Issued;
const tokens: Record<'kept' | 'revoked' | 'late', { secret: string; id: string }> = {} as never;
const stderr: string[] = [];

async function cli(args: string[], configFile: string): Promise<CliResult> {
  const r = await runCli([...args, '-c', configFile], { timeoutMs: 60_000 });
  stderr.push(r.stderr);
  return r;
}

async function token(name: keyof typeof tokens): Promise<void> {
  const r = await cli(['token', 'create', '--account', 'moved', '--label', name, '--json'], env.configFile);
  expect(r.code, r.stderr).toBe(0);
  const j = JSON.parse(r.stdout) as { token: string; id: string };
  tokens[name] = { secret: j.token, id: j.id };
}

beforeAll(async () => {
  env = await createTestEnv();
  redisConfig = join(env.dir, 'keygate-redis.yaml');
  env.writeConfig(onRedis(prefix), redisConfig);
  exportFile = join(env.dir, 'inventory-export.yaml');
  client = new Client(env);
  certificate = await mintClient(env.clientCa.authority, { commonName: 'moved-client' });
  // The file store (keygate.yaml): an account, two tokens (one revoked), a CN binding.
  expect((await cli(['account', 'create', '--name', 'moved', '--role', 'viewer'], env.configFile)).code).toBe(0);
  await token('kept');
  await token('revoked');
  expect((await cli(['token', 'revoke', tokens.revoked.id], env.configFile)).code).toBe(0);
  expect((await cli(['cert', 'bind', '--account', 'moved', '--cn', 'moved-client'], env.configFile)).code).toBe(0);
}, FLEET_SETUP_MS);

afterAll(async () => {
  client?.destroy();
  await env?.cleanup();
  await deletePrefix(prefix);
});

describe('file store → export → import into Redis → a replica on Redis', () => {
  it('export, import, import again (nothing changes), and the replica enforces what was exported', async () => {
    const exported = await cli(['store', 'export', '--out', exportFile], env.configFile);
    expect(exported.code, exported.stderr).toBe(0);
    expect(statSync(exportFile).mode & 0o777).toBe(0o600);
    // Created after the export: it must not exist on Redis.
    await token('late');

    const first = await cli(['store', 'import', exportFile], redisConfig);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^added 1 accounts, 2 tokens, 1 certificate bindings; 0 unchanged/);
    const again = await cli(['store', 'import', exportFile], redisConfig);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^added 0 accounts, 0 tokens, 0 certificate bindings; 4 unchanged/);

    // The same records on both sides (as the CLI lists them), but for the one made later.
    const list = async (configFile: string) => {
      const r = await cli(['token', 'list', '--format', 'json'], configFile);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as Array<{ id: string; status: string }>).map(({ id, status }) => ({ id, status })).sort((a, b) => a.id.localeCompare(b.id));
    };
    const onFile = await list(env.configFile);
    expect(await list(redisConfig)).toEqual(onFile.filter((t) => t.id !== tokens.late.id));

    replica = await env.startChild({ configFile: redisConfig, readyTimeoutMs: 60_000 });
    expect(await client.status(replica.port, tokens.kept.secret)).toBe(200);
    expect((await client.call(replica.port, tokens.revoked.secret)).code).toBe('KG_ERR_TOKEN_REVOKED');
    // Refused twin: the token made after the export is unknown there.
    expect((await client.call(replica.port, tokens.late.secret)).code).toBe('KG_ERR_TOKEN_UNKNOWN');
    // The binding came along: the client certificate is admitted on the client-auth host.
    const mtls = await request({ port: replica.port, servername: MTLS_HOST, path: '/api/items', ca: env.serverCa.certPem, cert: certificate.certPem, key: certificate.keyPem });
    expect(mtls.status).toBe(200);
    expect(env.upstream.received.at(-1)?.headers['x-keygate-account']).toBe('moved');
  });

  it('no secret in the export, in Redis, or in what the CLI and the replica wrote', async () => {
    const texts = { export: await readFile(exportFile, 'utf8'), cli: stderr.join('\n'), stdout: replica.stdout(), stderr: replica.stderr(), audit: await readFile(env.auditFile, 'utf8').catch(() => '') };
    expect(texts.export).toContain(tokens.kept.id);
    expect(await secretsLeaked(prefix, [tokens.kept.secret, tokens.revoked.secret, tokens.late.secret], texts)).toEqual([]);
  });
});
