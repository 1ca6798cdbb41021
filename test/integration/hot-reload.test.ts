// Reload is an atomic swap, on the real binary: a revocation made with the CLI is enforced
// within a second; a broken keygate.yaml or credential file is rejected (logged with its
// position, counted, audited as config.rejected) while the previous state keeps serving; a
// good change applies on file change and on SIGHUP.
import { mkdirSync, readFileSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, readJsonLines, deepMerge, eventually, request, type ChildProxy, type ConfigObject, type TestEnv } from '../helpers/harness.js';
import { CLI_TEST_TIMEOUT_MS, SETUP_TIMEOUT_MS, adminGet, sample, seedToken, writeAtomic } from './support.js';

let env: TestEnv;
let proxy: ChildProxy;
let base: ConfigObject;
let viewer: { secret: string; id: string };
let spare: { secret: string; id: string };

beforeAll(async () => {
  env = await createTestEnv();
  base = env.writeConfig();
  viewer = await seedToken(env, 'svc-viewer', { roles: ['viewer'] });
  spare = await seedToken(env, 'svc-viewer');
  proxy = await env.startChild();
}, SETUP_TIMEOUT_MS);
afterAll(() => env.cleanup());

const status = async (secret: string, path = '/api/items/1') => (await request({ port: proxy.port, ca: env.serverCa.certPem, path, headers: { 'x-api-key': secret } })).status;
const metric = async (name: string, labels: Record<string, string>) => sample((await adminGet(proxy.adminPort, '/metrics')).body, name, labels);
/** Every audit line so far; a line that is not JSON fails the test. */
const auditLines = () => readJsonLines(env.auditFile);
const logLines = (): Array<Record<string, unknown>> =>
  proxy
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const configText = (overrides: ConfigObject = {}) => stringify(deepMerge(base, overrides));

/** Writes a broken file and checks the rejection: log with position, metric, audit, old state serving. */
async function expectRejected(file: string, text: string, source: 'config' | 'credentials', position: RegExp) {
  const metricName = source === 'config' ? 'keygate_config_reloads_total' : 'keygate_store_reloads_total';
  const before = await metric(metricName, { result: 'rejected' });
  const configBefore = await metric('keygate_config_reloads_total', { result: 'rejected' });
  const logsBefore = logLines().length;
  const auditBefore = auditLines().length;
  writeAtomic(file, text);
  await eventually(async () => (await metric(metricName, { result: 'rejected' })) === before + 1, 2_000);
  // The SPEC metric counts both files: an alert on it alone misses no rejection.
  expect(await metric('keygate_config_reloads_total', { result: 'rejected' })).toBe(configBefore + 1);
  const logged = logLines()
    .slice(logsBefore)
    .find((l) => l.msg === `${source} change rejected; keeping the previous state`);
  expect(logged, 'rejection logged').toBeDefined();
  expect(logged!.level).toBe('error');
  expect((logged!.problems as string[]).some((p) => position.test(p)), JSON.stringify(logged!.problems)).toBe(true);
  await eventually(() => auditLines().slice(auditBefore).some((a) => a.event === 'config.rejected' && a.target === source), 3_000);
  const audited = auditLines()
    .slice(auditBefore)
    .find((a) => a.event === 'config.rejected')!;
  expect((audited.problems as string[]).some((p) => position.test(p))).toBe(true);
  // The previous state keeps serving: the token works, its scopes are unchanged.
  expect(await status(viewer.secret)).toBe(200);
  expect(await status(viewer.secret, '/api/reports/1')).toBe(403);
  expect(proxy.child.exitCode).toBeNull();
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('credential changes made with the CLI', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('a revocation is enforced within 1 s of the CLI returning; the other token keeps working', async () => {
    const doomed = await env.token('svc-viewer');
    await eventually(async () => (await status(doomed.secret)) === 200, 3_000);
    const r = await env.cli(['token', 'revoke', doomed.id, '--reason', 'test']);
    expect(r.code).toBe(0);
    await eventually(async () => (await status(doomed.secret)) === 401, 1_000);
    expect(await status(spare.secret)).toBe(200);
  });
});

describe('a broken keygate.yaml', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('with a syntax error is rejected with its position; the old config keeps serving', async () => {
    const good = configText();
    const lines = good.split('\n').length;
    await expectRejected(env.configFile, good + 'extra: [1, 2\n', 'config', new RegExp(`^${escape(env.configFile)}:(${lines}|${lines + 1}):\\d+: `));
  });

  it('with a schema error is rejected with its position; the old config keeps serving', async () => {
    const text = configText({ roles: { viewer: ['items:read', 'reports:read'] }, listen: { bogus: true } });
    const line = text.split('\n').findIndex((l) => l.trim().startsWith('bogus:')) + 1;
    await expectRejected(env.configFile, text, 'config', new RegExp(`^${escape(env.configFile)}:${line}:\\d+: .*bogus`));
  });

  it('then a good change (a new scope rule) applies on file change', async () => {
    const before = await metric('keygate_config_reloads_total', { result: 'success' });
    expect(await status(viewer.secret, '/api/reports/1')).toBe(403);
    writeAtomic(env.configFile, configText({ roles: { viewer: ['items:read', 'reports:read'] } }));
    await eventually(async () => (await status(viewer.secret, '/api/reports/1')) === 200, 2_000);
    expect(await metric('keygate_config_reloads_total', { result: 'success' })).toBeGreaterThan(before);
    await eventually(() => auditLines().some((a) => a.event === 'config.reloaded' && a.trigger === 'file change'), 3_000);
    // And back, so that later tests start from the base config.
    writeAtomic(env.configFile, configText());
    await eventually(async () => (await status(viewer.secret, '/api/reports/1')) === 403, 2_000);
  });
});

describe('a broken credential file', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('is rejected with its position, and the old credentials keep working', async () => {
    const good = readFileSync(env.credentialsFile, 'utf8');
    const lines = good.split('\n').length;
    await expectRejected(env.credentialsFile, good + 'tokens: [oops\n', 'credentials', new RegExp(`^${escape(env.credentialsFile)}:(${lines}|${lines + 1}):\\d+: `));
    // keygate writes one record per line (store/file/layout.ts): the edited line is the one named.
    const badHash = good.replace(/"hash":"[0-9a-f]{64}"/, '"hash":"not-a-hash"');
    expect(badHash).not.toBe(good);
    const line = badHash.split('\n').findIndex((l) => l.includes('"hash":"not-a-hash"')) + 1;
    await expectRejected(env.credentialsFile, badHash, 'credentials', new RegExp(`^${escape(env.credentialsFile)}:${line}:\\d+: `));
    // Putting the good file back is accepted again.
    const ok = await metric('keygate_store_reloads_total', { result: 'success' });
    writeAtomic(env.credentialsFile, good);
    await eventually(async () => (await metric('keygate_store_reloads_total', { result: 'success' })) > ok, 2_000);
    expect(await status(viewer.secret)).toBe(200);
  });
});

describe('SIGHUP', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('reloads a change the file watcher cannot see', async () => {
    // keygate.yaml becomes a link to a file in another folder (config management, a mounted
    // volume); an edit there names nothing in the folder keygate watches. SIGHUP is how an
    // operator says "reload now".
    const real = join(env.dir, 'managed');
    mkdirSync(real);
    writeAtomic(join(real, 'keygate.yaml'), configText());
    symlinkSync(join('managed', 'keygate.yaml'), join(env.dir, 'keygate.yaml.link'));
    const reloads = await metric('keygate_config_reloads_total', { result: 'success' });
    renameSync(join(env.dir, 'keygate.yaml.link'), env.configFile);
    await eventually(async () => (await metric('keygate_config_reloads_total', { result: 'success' })) > reloads, 2_000);
    expect(await status(viewer.secret, '/api/reports/1')).toBe(403);

    writeAtomic(join(real, 'keygate.yaml'), configText({ roles: { viewer: ['items:read', 'reports:read'] } }));
    proxy.child.kill('SIGHUP');
    await eventually(async () => (await status(viewer.secret, '/api/reports/1')) === 200, 2_000);
    await eventually(() => auditLines().some((a) => a.event === 'config.reloaded' && a.trigger === 'SIGHUP'), 3_000);
    expect(proxy.child.exitCode).toBeNull();
  });
});
