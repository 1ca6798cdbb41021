// The conventions every `keygate` command shares (docs/cli.md), on the built CLI (in this
// process; the binary as a child where the process is what is tested: the working folder, exit
// statuses, --version, serve): which
// keygate.yaml a command uses (-c, KEYGATE_CONFIG, ./config/keygate.yaml, the image's
// /etc/keygate/keygate.yaml) and that a failure names it; --format on every command that prints
// data; the one exit-code table, a case per code; change commands keep their audit line off the
// terminal unless --verbose; `serve` writes only JSON lines on stderr, even when it cannot start;
// --version; examples in every --help.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse, stringify } from 'yaml';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.js';
import { IMAGE_CONFIG } from '../../src/config/locate.js';
import { createTestEnv, readJsonLines, runCli, type CliResult, type TestEnv } from '../helpers/harness.js';
import { mintClient } from '../helpers/pki.js';

// Some CLI children (a node start-up each): allow for a busy machine.
vi.setConfig({ testTimeout: 90_000 });

let env: TestEnv;
/** Unset for every run here: the runner's own environment must not pick the config. */
const NO_CONFIG_ENV = { KEYGATE_CONFIG: '' };

beforeAll(async () => {
  env = await createTestEnv();
});
afterAll(() => env.cleanup());

/**
 * A config of its own in `dir`: the test env's, with absolute TLS paths and its own credential
 * file and audit log, seeded with one account named `marker`. Which config a command used shows
 * in the accounts it lists.
 */
async function variant(dir: string, marker: string, file = join(dir, 'keygate.yaml')): Promise<string> {
  mkdirSync(join(file, '..'), { recursive: true });
  const cfg = parse(readFileSync(env.configFile, 'utf8')) as Record<string, any>;
  cfg.listen.tls = { cert: join(env.dir, 'server.crt'), key: join(env.dir, 'server.key') };
  cfg.listen.clientAuth = { ...cfg.listen.clientAuth, ca: join(env.dir, 'client-ca.crt'), caKey: join(env.dir, 'client-ca.key') };
  cfg.store = { ...cfg.store, file: join(dir, 'credentials.yaml') };
  cfg.audit = { output: join(dir, 'audit.log') };
  writeFileSync(file, stringify(cfg));
  const r = await runCli(['account', 'create', '--name', marker, '--role', 'viewer', '-c', file], { env: NO_CONFIG_ENV });
  if (r.code !== 0) throw new Error(r.stderr);
  return file;
}

const accounts = (r: CliResult) => {
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Array<{ name: string }>).map((a) => a.name);
};

describe('which keygate.yaml a command uses', () => {
  let flagFile: string;
  let envFile: string;
  let checkout: string;

  beforeAll(async () => {
    flagFile = await variant(join(env.dir, 'by-flag'), 'from-flag');
    envFile = await variant(join(env.dir, 'by-env'), 'from-env');
    checkout = join(env.dir, 'checkout');
    await variant(checkout, 'from-checkout', join(checkout, 'config', 'keygate.yaml'));
  }, 60_000);

  const list = (args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) => runCli(['account', 'list', '--format', 'json', ...args], { cwd: opts.cwd ?? env.dir, env: { ...NO_CONFIG_ENV, ...opts.env } });

  it('1. -c FILE, over KEYGATE_CONFIG and ./config/keygate.yaml', async () => {
    expect(accounts(await list(['-c', flagFile], { cwd: checkout, env: { KEYGATE_CONFIG: envFile } }))).toEqual(['from-flag']);
  });

  it('2. else KEYGATE_CONFIG, over ./config/keygate.yaml', async () => {
    expect(accounts(await list([], { cwd: checkout, env: { KEYGATE_CONFIG: envFile } }))).toEqual(['from-env']);
  });

  it('3. else ./config/keygate.yaml of the working folder', async () => {
    expect(accounts(await list([], { cwd: checkout }))).toEqual(['from-checkout']);
    // Relative to the working folder, as -c is.
    expect(accounts(await list(['-c', 'by-flag/keygate.yaml'], { cwd: env.dir }))).toEqual(['from-flag']);
  });

  it.skipIf(existsSync(IMAGE_CONFIG))('4. else /etc/keygate/keygate.yaml, and when that is missing too, an error naming every place', async () => {
    const r = await list([], { cwd: env.dir });
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`keygate: no config file: not given with -c, KEYGATE_CONFIG is not set, and neither ${join(env.dir, 'config/keygate.yaml')} nor ${IMAGE_CONFIG} exists\n`);
  });

  it('a file named with -c or KEYGATE_CONFIG must exist: no falling through to another config', async () => {
    const missing = join(env.dir, 'nowhere.yaml');
    const byFlag = await list(['-c', missing], { cwd: checkout });
    expect(byFlag.code).toBe(3);
    expect(byFlag.stderr).toBe(`keygate: config ${missing}: no such file (given with -c)\n`);
    const byEnv = await list([], { cwd: checkout, env: { KEYGATE_CONFIG: missing } });
    expect(byEnv.code).toBe(3);
    expect(byEnv.stderr).toBe(`keygate: config ${missing}: no such file (named by KEYGATE_CONFIG)\n`);
  });

  it('every failure after that names the file the command used', async () => {
    const r = await runCli(['account', 'show', 'nobody'], { cwd: checkout, env: NO_CONFIG_ENV });
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`keygate: config ${join(checkout, 'config/keygate.yaml')}: no account named "nobody"\n`);
  });
});

describe('a credential store that is not there', () => {
  it('is an error for a command that reads, not an empty inventory', async () => {
    const dir = join(env.dir, 'no-store');
    const file = await variant(dir, 'unused');
    const empty = join(dir, 'empty.yaml');
    const cfg = parse(readFileSync(file, 'utf8')) as Record<string, any>;
    cfg.store.file = join(dir, 'none-yet.yaml');
    writeFileSync(empty, stringify(cfg));
    for (const args of [['account', 'list'], ['account', 'show', 'x'], ['token', 'list'], ['token', 'show', 'tok_00000000000000'], ['cert', 'list'], ['store', 'export'], ['explain', '--account', 'x', 'GET', '/api/items']]) {
      const r = await runCli([...args, '-c', empty]);
      expect(r.code, args.join(' ')).toBe(5);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr, args.join(' ')).toBe(`keygate: config ${empty}: no credential store at ${join(dir, 'none-yet.yaml')}: create one with keygate account create\n`);
    }
    // The refused twin: a change creates it.
    const created = await runCli(['account', 'create', '--name', 'first', '-c', empty]);
    expect(created.code, created.stderr).toBe(0);
    expect(accounts(await runCli(['account', 'list', '--format', 'json', '-c', empty]))).toEqual(['first']);
  });
});

describe('one exit-code table', () => {
  let secret: string;
  let tokenId: string;

  beforeAll(async () => {
    ({ secret, id: tokenId } = await env.token('exits', { roles: ['viewer'] }));
  });

  it.each<[number, string, (e: TestEnv) => string[]]>([
    [0, 'ok', () => ['token', 'show', tokenId]],
    [1, 'invalid input (a bad value)', () => ['account', 'create', '--name', 'bad/name']],
    [1, 'invalid input (token scopes wider than the account)', () => ['token', 'create', '--account', 'exits', '--scope', 'items:write']],
    [2, 'usage (an unknown option)', () => ['token', 'list', '--colour']],
    [2, 'usage (a flag value that does not parse)', () => ['token', 'create', '--account', 'exits', '--expires', 'soon']],
    [3, 'not found', () => ['token', 'revoke', 'tok_00000000000000']],
    [4, 'conflict', () => ['account', 'create', '--name', 'EXITS']],
  ])('%i: %s', async (code, _what, args) => {
    // The binary, as a child: the exit status is the process's.
    const r = await env.cli(args(env), { spawn: true });
    expect(r.code, r.stderr).toBe(code);
    // One line (commander adds its "run with --help" hint to a usage error).
    if (code !== 0) expect(r.stderr.trim().split('\n').filter((l) => !l.startsWith('(run with --help'))).toHaveLength(1);
    expect(r.stdout).not.toContain(secret);
  });

  it('5: store unavailable (its folder is gone, or another command holds its lock)', async () => {
    const dir = join(env.dir, 'exit5');
    const file = await variant(dir, 'unused');
    const cfg = parse(readFileSync(file, 'utf8')) as Record<string, any>;
    cfg.store.file = join(dir, 'no-such-folder', 'credentials.yaml');
    const gone = join(dir, 'gone.yaml');
    writeFileSync(gone, stringify(cfg));
    const r = await runCli(['account', 'create', '--name', 'x', '-c', gone], { spawn: true });
    expect(r.code).toBe(5);
    expect(r.stderr).toBe(`keygate: config ${gone}: cannot write the credential file ${cfg.store.file}: its folder does not exist (ENOENT)\n`);

    // A lock held (fresh, so not taken for left behind): the command gives up after its bound.
    writeFileSync(join(dir, 'credentials.yaml.lock'), '1');
    const locked = await runCli(['account', 'create', '--name', 'y', '-c', file]);
    expect(locked.code).toBe(5);
    expect(locked.stderr).toMatch(/^keygate: config \S+: could not lock \S+credentials\.yaml\.lock: another keygate command holds it/);
  });

  it('explain: 0 allowed, 1 denied — its one meaning of its own', async () => {
    expect((await env.cli(['explain', '--account', 'exits', 'GET', '/api/items'])).code).toBe(0);
    expect((await env.cli(['explain', '--account', 'exits', 'POST', '/api/items'])).code).toBe(1);
  });
});

describe('--format on every command that prints data', () => {
  let tokenId: string;
  let bindFile: string;

  beforeAll(async () => {
    ({ id: tokenId } = await env.token('formats', { roles: ['editor'] }));
    const c = await mintClient(env.clientCa.authority, { commonName: 'formats' });
    bindFile = join(env.dir, 'formats.pem');
    writeFileSync(bindFile, c.certPem);
    expect((await env.cli(['cert', 'bind', '--account', 'formats', '--cn', 'formats-listed'])).code).toBe(0);
    const exported = await env.cli(['store', 'export', '--out', join(env.dir, 'export.yaml')]);
    expect(exported.code, exported.stderr).toBe(0);
  });

  const isCsv = (text: string) => {
    const lines = text.split('\r\n');
    expect(lines.length).toBeGreaterThanOrEqual(3); // a header, at least one row, the final CRLF
    expect(lines.at(-1)).toBe('');
    expect(lines[0]).toMatch(/^[a-zA-Z]+(,[a-zA-Z]+)+$/);
  };

  // [command, formats it takes, has --json]: every format it takes works, and the others are usage errors.
  const commands: Array<[string, () => string[], string[], boolean]> = [
    ['account list', () => ['account', 'list'], ['table', 'json', 'csv'], false],
    ['account show', () => ['account', 'show', 'formats'], ['table', 'json', 'csv'], true],
    ['account create', () => ['account', 'create', '--name', `f-${randomUUID().slice(0, 8)}`, '--role', 'viewer'], ['table', 'json', 'csv'], true],
    ['account update', () => ['account', 'update', 'formats', '--description', 'updated'], ['table', 'json', 'csv'], true],
    ['token list', () => ['token', 'list'], ['table', 'json', 'csv'], false],
    ['token show', () => ['token', 'show', tokenId], ['table', 'json', 'csv'], true],
    ['token create', () => ['token', 'create', '--account', 'formats'], ['table', 'json', 'csv'], true],
    ['cert list', () => ['cert', 'list'], ['table', 'json', 'csv'], false],
    ['cert issue', () => ['cert', 'issue', '--account', 'formats', '--out', join(env.dir, `issued-${randomUUID().slice(0, 8)}`)], ['table', 'json', 'csv'], true],
    ['explain', () => ['explain', '--account', 'formats', 'GET', '/api/items'], ['table', 'json'], true],
    ['check', () => ['check'], ['table', 'json'], false],
    // keep: `account update` above changed a record the export holds.
    ['store import', () => ['store', 'import', join(env.dir, 'export.yaml'), '--on-conflict', 'keep'], ['table', 'json'], false],
  ];

  it.each(commands)('%s', async (_name, args, formats, json) => {
    for (const format of formats) {
      const r = await env.cli([...args(), '--format', format]);
      expect(r.code, `${format}: ${r.stderr}`).toBe(0);
      if (format === 'json') expect(() => JSON.parse(r.stdout), r.stdout).not.toThrow();
      if (format === 'csv') isCsv(r.stdout);
      if (format === 'table') expect(() => JSON.parse(r.stdout)).toThrow();
    }
    if (json) {
      const r = await env.cli([...args(), '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(() => JSON.parse(r.stdout)).not.toThrow();
    }
    for (const format of ['xml', ...['csv'].filter((f) => !formats.includes(f))]) {
      const r = await env.cli([...args(), '--format', format]);
      expect(r.code, format).toBe(2);
      expect(r.stderr).toContain(`unknown format "${format}"`);
      expect(r.stdout).toBe('');
    }
  });

  it('cert bind: the id alone by default, the binding with json and csv', async () => {
    const table = await env.cli(['cert', 'bind', '--account', 'formats', '--cn', 'formats-a']);
    expect(table.stdout).toMatch(/^crt_\w+\n$/);
    const json = JSON.parse((await env.cli(['cert', 'bind', '--account', 'formats', '--cn', 'formats-b', '--format', 'json'])).stdout);
    expect(json).toMatchObject({ account: 'formats', match: 'cn', value: 'formats-b' });
    const csv = await env.cli(['cert', 'bind', '--account', 'formats', '--file', bindFile, '--format', 'csv']);
    expect(csv.code, csv.stderr).toBe(0);
    isCsv(csv.stdout);
  });
});

describe('audit lines of change commands', () => {
  it('go to the audit file, not to the terminal; --verbose also prints them on stderr', async () => {
    const before = readJsonLines(env.auditFile).length;
    const quiet = await env.cli(['account', 'create', '--name', 'audited', '--role', 'viewer']);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('account "audited" created\n');
    expect(quiet.stdout).not.toContain('"event"');
    const lines = readJsonLines(env.auditFile);
    expect(lines.slice(before)).toEqual([expect.objectContaining({ event: 'account.created', target: 'audited' })]);

    const verbose = await env.cli(['account', 'disable', 'audited', '--verbose']);
    expect(verbose.code, verbose.stderr).toBe(0);
    const [json, confirmation, ...rest] = verbose.stderr.split('\n');
    expect(JSON.parse(json!)).toMatchObject({ event: 'account.disabled', target: 'audited' });
    expect([confirmation, ...rest]).toEqual(['account "audited" disabled', '']);
    expect(readJsonLines(env.auditFile).at(-1)).toMatchObject({ event: 'account.disabled', target: 'audited' });
  });

  it('with audit.output stdout (the proxy\'s stream): on neither stdout nor stderr, unless --verbose', async () => {
    const dir = join(env.dir, 'audit-stdout');
    const file = await variant(dir, 'unused');
    const cfg = parse(readFileSync(file, 'utf8')) as Record<string, any>;
    cfg.audit = { output: 'stdout' };
    writeFileSync(file, stringify(cfg));
    const created = await runCli(['token', 'create', '--account', 'unused', '-c', file]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^kg_[0-9A-Za-z]{39}\n$/); // the secret, alone
    expect(created.stderr.split('\n').filter(Boolean)).toEqual([expect.stringMatching(/^token tok_\w+ created for account "unused"\. Store the secret now/)]);
    const revoked = await runCli(['token', 'revoke', /tok_\w+/.exec(created.stderr)![0], '-c', file]);
    expect(revoked.stdout + revoked.stderr).not.toContain('"event"');
    const verbose = await runCli(['account', 'update', 'unused', '--owner', 'o@example.com', '--verbose', '-c', file]);
    expect(verbose.code, verbose.stderr).toBe(0);
    expect(JSON.parse(verbose.stderr.split('\n')[0]!)).toMatchObject({ event: 'account.updated', target: 'unused', actor: expect.stringMatching(/^cli:/) });
    expect(verbose.stdout).not.toContain('"event"');
  });
});

describe('keygate serve', () => {
  const jsonOnly = (stderr: string) => {
    const lines = stderr.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(0);
    return lines.map((l) => {
      expect(() => JSON.parse(l), l).not.toThrow();
      return JSON.parse(l) as Record<string, unknown>;
    });
  };

  it('logs only JSON lines on stderr when the config has errors, the problems inside one of them', async () => {
    const dir = join(env.dir, 'serve-broken');
    mkdirSync(dir);
    const file = join(dir, 'keygate.yaml');
    writeFileSync(file, 'listen:\n  port: not-a-port\nroutes: []\nbogus: 1\n');
    const r = await runCli(['serve', '-c', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const [fatal, ...others] = jsonOnly(r.stderr);
    expect(others).toEqual([]);
    expect(fatal).toMatchObject({ level: 'fatal', config: file, code: 'KG_ERR_CONFIG_INVALID', msg: 'configuration has errors; not starting' });
    const problems = fatal!.problems as string[];
    expect(problems.length).toBeGreaterThan(1);
    for (const p of problems) expect(p).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: `));
    // The same problems as keygate check prints them, plain.
    const check = await runCli(['check', '-c', file]);
    expect(check.stderr.split('\n').slice(0, problems.length)).toEqual(problems);
  });

  it('and when the config file is missing', async () => {
    const missing = join(env.dir, 'serve-missing.yaml');
    const r = await runCli(['serve', '-c', missing]);
    expect(r.code).toBe(3);
    expect(jsonOnly(r.stderr)).toEqual([expect.objectContaining({ level: 'fatal', code: 'KG_ERR_NOT_FOUND', msg: `not starting: config ${missing}: no such file (given with -c)` })]);
  });
});

describe('--version and --help', () => {
  const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

  it('--version and -V print the package version', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag], { spawn: true });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${VERSION}\n`);
      expect(r.stderr).toBe('');
    }
    expect((await runCli(['--versio'])).code).toBe(2);
  });

  it('every command has examples at the end of its --help', async () => {
    // Every command and command group (the program itself is checked below).
    const leaves: string[][] = [];
    const walk = (cmd: Command, path: string[]) => {
      if (path.length) leaves.push(path);
      for (const sub of cmd.commands) walk(sub, [...path, sub.name()]);
    };
    walk(await buildProgram({ out: () => undefined, err: () => undefined }, {}), []);
    expect(leaves.length).toBeGreaterThan(25);
    // A few at a time: each is a node start-up.
    for (let i = 0; i < leaves.length; i += 4) {
      await Promise.all(
        leaves.slice(i, i + 4).map(async (path) => {
          const r = await runCli([...path, '--help']);
          expect(r.code, path.join(' ')).toBe(0);
          expect(r.stdout, path.join(' ')).toMatch(new RegExp(`\\nExamples:\\n(  \\$ (keygate ${path.join(' ')}|npm start|TOKEN=\\$\\(keygate ${path.join(' ')}|KEYGATE_CONFIG=\\S+ keygate ${path.join(' ')})\\b.*\\n)+\\n?$`));
        }),
      );
    }
    const root = await runCli(['--help']);
    expect(root.stdout).toContain('Examples:');
    expect(root.stdout).toContain('Exit codes: 0 ok, 1 invalid input, 2 usage, 3 not found, 4 conflict, 5 store unavailable');
  });
});
