// `keygate check -c FILE`, through the built CLI (harness runCli): exit 0 with a summary for a
// valid setup, exit 1 with every problem as `file:line:col: message` on stderr otherwise, for
// keygate.yaml and for the credential file alike, then a count naming the config (exit 3 when
// the config file itself does not exist). The expected lines are the ones the
// fixtures declare (test/fixtures/README.md); the unit test holds the library to the same.
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_FIXTURES, CREDENTIAL_FIXTURES, expectedProblems, invalidFixtures } from '../fixtures/expected.js';
import { createTestEnv, runCli, type TestEnv } from '../helpers/harness.js';

let env: TestEnv;
let cases = 0;

beforeAll(async () => {
  env = await createTestEnv();
});
afterAll(() => env.cleanup());

/**
 * A fresh folder holding the config fixture as keygate.yaml, real TLS files minted for this
 * test next to it, and optionally a credential fixture as credentials.yaml.
 */
function setup(configFixture: string, credentialFixture?: string): { dir: string; config: string; credentials: string } {
  const dir = join(env.dir, `case-${++cases}`);
  mkdirSync(dir);
  for (const f of ['server.crt', 'server.key']) copyFileSync(join(env.dir, f), join(dir, f));
  const config = join(dir, 'keygate.yaml');
  copyFileSync(join(CONFIG_FIXTURES, configFixture), config);
  const credentials = join(dir, 'credentials.yaml');
  if (credentialFixture) copyFileSync(join(CREDENTIAL_FIXTURES, credentialFixture), credentials);
  return { dir, config, credentials };
}

/** Variables the fixtures reference, made unset (empty counts as unset) whatever the runner's environment. */
const cleanEnv = { KG_FIXTURE_UNSET: '', KG_FIXTURE_UNSET_TOO: '', FIXTURE_PORT: '' };

const check = (config: string) => runCli(['check', '-c', config], { env: cleanEnv });

describe('keygate check: a valid setup', () => {
  it('exits 0 with a summary and nothing on stderr', async () => {
    const { config } = setup('valid.yaml', 'valid.yaml');
    const r = await check(config);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`${config}: ok — 2 route(s), 3 scope(s), 2 account(s), 2 token(s), 2 certificate binding(s)`);
  });

  it('accepts a setup without a credential file yet, and says so', async () => {
    const { config, credentials } = setup('valid.yaml');
    const r = await check(config);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`${config}: ok — 2 route(s), 3 scope(s), no credential file yet (${credentials}: keygate account create writes it)`);
  });

  it('--format json reports the same, for a valid setup and for one with problems', async () => {
    const { config, credentials } = setup('valid.yaml', 'valid.yaml');
    const ok = await runCli(['check', '-c', config, '--format', 'json'], { env: cleanEnv });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ config, ok: true, store: { kind: 'file', file: credentials, exists: true }, routes: 2, scopes: 3, accounts: 2, tokens: 2, certificates: 2, problems: [] });

    const [bad] = invalidFixtures(CONFIG_FIXTURES);
    const broken = setup(bad!);
    const r = await runCli(['check', '-c', broken.config, '--format', 'json'], { env: cleanEnv });
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as { ok: boolean; problems: Array<{ file: string; line: number; col: number; text: string }> };
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.text)).toEqual(expectedProblems(join(CONFIG_FIXTURES, bad!)).map((l) => `${broken.config}:${l}`));
    const n = report.problems.length;
    expect(r.stderr).toBe(`keygate: config ${broken.config}: ${n} problem${n === 1 ? '' : 's'} found\n`);
    expect((await runCli(['check', '-c', config, '--format', 'csv'])).code).toBe(2);
  });

  it('honours ${ENV} from its own environment', async () => {
    const { config } = setup('env-unset.yaml');
    const r = await runCli(['check', '-c', config], { env: { ...cleanEnv, KG_FIXTURE_UNSET: '127.0.0.1' } });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('keygate check: keygate.yaml problems', () => {
  it.each(invalidFixtures(CONFIG_FIXTURES))('%s: exit 1, every declared problem positioned, then a count', async (name) => {
    const { config } = setup(name);
    const r = await check(config);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const expected = expectedProblems(join(CONFIG_FIXTURES, name));
    const n = expected.length;
    expect(r.stderr.trimEnd().split('\n')).toEqual([...expected.map((l) => `${config}:${l}`), `keygate: config ${config}: ${n} problem${n === 1 ? '' : 's'} found`]);
  });

  it('says that the config file given does not exist (exit 3, not found)', async () => {
    const missing = join(env.dir, 'nowhere', 'keygate.yaml');
    const r = await check(missing);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`keygate: config ${missing}: no such file (given with -c)\n`);
  });

  it('reports a missing TLS key at the position of listen.tls.key', async () => {
    const { config, dir } = setup('valid.yaml');
    const key = join(dir, 'server.key');
    rmSync(key);
    const r = await check(config);
    expect(r.code).toBe(1);
    // valid.yaml line 6: `  tls: { cert: server.crt, key: server.key }`, the key at column 33.
    expect(r.stderr.trimEnd().split('\n')).toEqual([`${config}:6:33: cannot read ${key}: file not found`, `keygate: config ${config}: 1 problem found`]);
  });
});

describe('keygate check: credential file problems', () => {
  it.each(invalidFixtures(CREDENTIAL_FIXTURES))('%s: exit 1, positioned in the credential file', async (name) => {
    const { config, credentials } = setup('valid.yaml', name);
    const r = await check(config);
    expect(r.code).toBe(1);
    const expected = expectedProblems(join(CREDENTIAL_FIXTURES, name));
    const n = expected.length;
    expect(r.stderr.trimEnd().split('\n')).toEqual([...expected.map((l) => `${credentials}:${l}`), `keygate: config ${config}: ${n} problem${n === 1 ? '' : 's'} found`]);
  });

  it('never echoes a hash (or anything like one) from the credential file it checks', async () => {
    const { config } = setup('valid.yaml', 'bad-hash.yaml');
    const r = await check(config);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).not.toMatch(/[0-9a-fA-F]{40}/);
  });
});
