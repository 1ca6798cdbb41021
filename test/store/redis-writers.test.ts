// Twenty writers in twenty processes, released at the same instant, each creating a token in
// the shared inventory: every one lands, each exactly once, and the change log names each
// writer. The writers are real node processes running the built store (dist/).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createAccount } from '../../src/store/operations.js';
import { RedisStore } from '../../src/store/redis/store.js';
import { TestClock } from './conformance.js';
import { deletePrefix, redisConfig, testPrefix } from './redis-support.js';

vi.setConfig({ testTimeout: 120_000 });

const WRITERS = 20;
const prefix = testPrefix();
const config = redisConfig({ prefix });
const dist = (p: string) => fileURLToPath(new URL(`../../dist/${p}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'kg-writers-'));
const children: ChildProcess[] = [];

// Each child opens the store, reads (so that all are connected and warm), says "ready", waits
// for "go" on stdin, then creates one token and prints its id.
const CHILD = `
import { RedisStore } from ${JSON.stringify(dist('store/redis/store.js'))};
import { createToken } from ${JSON.stringify(dist('store/operations.js'))};
const config = JSON.parse(process.argv[2]);
const actor = process.argv[3];
const store = new RedisStore(config);
await store.read();
process.stdout.write('ready\\n');
process.stdin.once('data', async () => {
  try {
    const ctx = { config: { roles: {}, scopes: {}, policies: {}, environment: null }, now: new Date() };
    const id = await store.update((d) => createToken(d, { account: 'fleet' }, ctx).record.id, { actor });
    process.stdout.write('id ' + id + '\\n');
  } catch (err) {
    process.stdout.write('error ' + err.message + '\\n');
  }
  await store.close();
  process.stdin.destroy();
});
`;

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  await deletePrefix(prefix);
});

describe('concurrent writers', () => {
  it(`${WRITERS} processes create a token each at the same moment: all land, once each`, async () => {
    const setup = new RedisStore(config);
    await setup.update((d) => createAccount(d, { name: 'fleet' }, new TestClock(Date.now()).ctx()));
    const start = (await setup.readLog(0)).length;
    const script = join(dir, 'writer.mjs');
    writeFileSync(script, CHILD);
    const outputs = Array.from({ length: WRITERS }, () => '');
    const exits: Promise<number | null>[] = [];
    for (let i = 0; i < WRITERS; i++) {
      const child = spawn(process.execPath, [script, JSON.stringify(config), `replica:${i}`], { stdio: ['pipe', 'pipe', 'inherit'] });
      children.push(child);
      child.stdout!.on('data', (b: Buffer) => (outputs[i] += b.toString()));
      exits.push(new Promise((r) => child.once('exit', r)));
    }
    const deadline = Date.now() + 60_000;
    while (!outputs.every((o) => o.includes('ready'))) {
      if (Date.now() > deadline) throw new Error(`writers not ready: ${outputs.filter((o) => !o.includes('ready')).length} missing`);
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const c of children) c.stdin!.write('go\n');
    const codes = await Promise.race([Promise.all(exits), new Promise<never>((_, rej) => setTimeout(() => rej(new Error('writers did not finish')), 60_000))]);
    expect(codes.every((c) => c === 0), outputs.join('')).toBe(true);

    const ids = outputs.map((o) => /id (tok_\w+)/.exec(o)?.[1]);
    expect(ids.every((id) => id !== undefined), outputs.join('')).toBe(true);
    expect(new Set(ids).size).toBe(WRITERS);
    const data = await setup.read();
    expect(data.tokens.map((t) => t.id).sort()).toEqual([...ids].sort());
    // One log entry per writer, naming it: 20 commits, none applied twice.
    const log = (await setup.readLog(0, 1_000)).slice(start);
    expect(log).toHaveLength(WRITERS);
    expect(new Set(log.map((e) => e.actor))).toEqual(new Set(Array.from({ length: WRITERS }, (_, i) => `replica:${i}`)));
    await setup.close();
  });
});
