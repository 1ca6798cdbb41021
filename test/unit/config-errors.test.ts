// Every problem in keygate.yaml or the credential file is reported with its position, as
// `file:line:col: message`. The fixtures declare exactly what each must produce
// (`# expect: LINE:COL: message`, see test/fixtures/README.md); this file holds the library
// to them, test/cli/check.test.ts holds the real CLI to the same lines.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileLoaded, indexStore } from '../../src/runtime/build.js';
import { loadConfig, type LoadedConfig } from '../../src/config/load.js';
import { formatProblem, parseYamlText, SourceError, type Problem } from '../../src/config/source.js';
import { UpstreamPools } from '../../src/forward/upstream-pools.js';
import { FileStore } from '../../src/store/file/file-store.js';
import { CONFIG_FIXTURES as CONFIGS, CREDENTIAL_FIXTURES as CREDENTIALS, expectedProblems, invalidFixtures as invalid, yamlFixtures as yamlFiles } from '../fixtures/expected.js';

const pools = new UpstreamPools();
afterAll(() => pools.closeAll(true));

/** loadConfig, then compileLoaded (scope rules are checked when compiled): every problem. */
function configProblems(file: string, env: NodeJS.ProcessEnv = {}): { loaded?: LoadedConfig; problems: Problem[] } {
  const { loaded, problems } = loadConfig(file, env);
  if (!loaded) return { problems };
  const compiled = compileLoaded(loaded, pools);
  return { loaded, problems: compiled.problems };
}

const strip = (file: string, problems: Problem[]) =>
  problems.map((p) => {
    const line = formatProblem(p);
    expect(line.startsWith(`${file}:`), line).toBe(true);
    return line.slice(file.length + 1);
  });

describe('keygate.yaml fixtures', () => {
  it('has an invalid fixture for every kind of problem the checker promises to position', () => {
    expect(invalid(CONFIGS)).toEqual(
      expect.arrayContaining([
        'bad-duration.yaml',
        'bad-rate.yaml',
        'bad-scope-rule.yaml',
        'env-unset.yaml',
        'missing-tls.yaml',
        'role-unknown-scope.yaml',
        'unknown-key-nested.yaml',
        'unknown-key-top.yaml',
        'upstream-path.yaml',
        'wrong-type.yaml',
        'yaml-syntax.yaml',
      ]),
    );
  });

  it.each(invalid(CONFIGS))('%s: exactly the declared problems, in order, with positions', (name) => {
    const file = join(CONFIGS, name);
    const { loaded, problems } = configProblems(file);
    expect(loaded === undefined || problems.length > 0).toBe(true);
    expect(strip(file, problems)).toEqual(expectedProblems(file));
  });

  it.each(yamlFiles(CONFIGS).filter((f) => !invalid(CONFIGS).includes(f) && f !== 'env-values.yaml'))('%s: no problem', (name) => {
    const { loaded, problems } = configProblems(join(CONFIGS, name));
    expect(problems.map(formatProblem)).toEqual([]);
    expect(loaded).toBeDefined();
  });

  it('reads the valid fixture into typed values, paths resolved against its folder', () => {
    const { loaded } = configProblems(join(CONFIGS, 'valid.yaml'));
    const c = loaded!.config;
    expect(c.listen.port).toBe(0);
    expect(c.listen.tls.cert).toBe(join(CONFIGS, 'server.crt'));
    expect(c.store.file).toBe(join(CONFIGS, 'credentials.yaml'));
    expect(c.routes.map((r) => [r.pathPrefix, r.public, r.timeout])).toEqual([
      ['/healthz', true, 30_000],
      ['/', false, 30_000],
    ]);
    expect(c.policies.ci).toMatchObject({ burst: 30, per: 'account', rate: { perMs: 600 / 60_000, text: '600/m' } });
    expect(c.policies.default!.rate.perMs).toBe(10 / 1_000);
    expect(c.audit.output).toBe('stdout');
  });

  it('reports only the first YAML syntax error, though the file has more', () => {
    const file = join(CONFIGS, 'yaml-syntax.yaml');
    const src = parseYamlText(file, readFileSync(file, 'utf8'));
    expect(src.doc.errors.length).toBeGreaterThan(1);
    expect(src.problems).toHaveLength(1);
  });

  it('reports a missing file as a problem of that file', () => {
    const file = join(CONFIGS, 'does-not-exist.yaml');
    expect(loadConfig(file, {}).problems.map(formatProblem)).toEqual([`${file}:1:1: cannot read: file not found`]);
  });

  it('carries every problem in a SourceError, one line each', () => {
    const file = join(CONFIGS, 'bad-rate.yaml');
    const { problems } = loadConfig(file, {});
    const err = new SourceError(problems);
    expect(err.message.split('\n')).toEqual(expectedProblems(file).map((l) => `${file}:${l}`));
  });
});

describe('${ENV} substitution', () => {
  const file = join(CONFIGS, 'env-values.yaml');

  it('reads a quoted "${PORT}" as a number and unquoted values as YAML would', () => {
    const { loaded, problems } = configProblems(file, { KG_PORT: '8443', KG_MAINT: 'true' });
    expect(problems).toEqual([]);
    const c = loaded!.config;
    expect(c.listen.port).toBe(8443);
    expect(c.maintenance).toBe(true);
  });

  it('falls back to ${VAR:-default} when VAR is unset or empty, and uses VAR when set', () => {
    const unset = configProblems(file, { KG_PORT: '8443', KG_MAINT: 'false' }).loaded!.config;
    expect(unset.listen.host).toBe('127.0.0.1');
    expect(unset.admin.port).toBe(9091);
    expect(unset.routes[0]!.upstream).toBe('http://127.0.0.1:8080');
    expect(unset.routes[0]!.public).toBe(false);
    const empty = configProblems(file, { KG_PORT: '8443', KG_MAINT: 'false', KG_ADMIN_PORT: '' }).loaded!.config;
    expect(empty.admin.port).toBe(9091);
    const set = configProblems(file, { KG_PORT: '1', KG_MAINT: 'false', KG_HOST: '0.0.0.0', KG_ADMIN_PORT: '9999', KG_UPSTREAM_PORT: '9000', KG_PUBLIC: 'true' }).loaded!.config;
    expect(set.listen.host).toBe('0.0.0.0');
    expect(set.admin.port).toBe(9999);
    expect(set.routes[0]!.upstream).toBe('http://127.0.0.1:9000');
    expect(set.routes[0]!.public).toBe(true);
  });

  it('reports an unset or empty variable without a default once, at its place', () => {
    for (const env of [{ KG_MAINT: 'true' }, { KG_PORT: '', KG_MAINT: 'true' }]) {
      const { problems } = configProblems(file, env);
      expect(strip(file, problems)).toEqual(['6:9: environment variable KG_PORT is not set (write ${KG_PORT:-default} for a default)']);
    }
  });

  it('validates the substituted value like any other, at the position of the reference', () => {
    const { problems } = configProblems(file, { KG_PORT: 'eighty', KG_MAINT: 'yes' });
    expect(strip(file, problems)).toEqual([
      '6:9: listen.port: Invalid input: expected number, received string',
      '14:14: maintenance: Invalid input: expected boolean, received string',
    ]);
  });
});

describe('credential file fixtures (against config/valid.yaml)', () => {
  const compiled = (() => {
    const { loaded } = loadConfig(join(CONFIGS, 'valid.yaml'), {});
    const r = compileLoaded(loaded!, pools);
    if (!r.compiled) throw new Error(r.problems.map(formatProblem).join('\n'));
    return r.compiled;
  })();

  it('has an invalid fixture for each cross-check and schema problem', () => {
    expect(invalid(CREDENTIALS)).toEqual(
      expect.arrayContaining(['bad-hash.yaml', 'duplicate-id.yaml', 'token-scope-outside-account.yaml', 'unknown-account.yaml', 'unknown-key.yaml']),
    );
  });

  it.each(invalid(CREDENTIALS))('%s: exactly the declared problems, with positions', async (name) => {
    const file = join(CREDENTIALS, name);
    const { index, problems } = await indexStore(compiled, new FileStore(file));
    expect(index).toBeUndefined();
    expect(strip(file, problems)).toEqual(expectedProblems(file));
  });

  it('indexes the valid fixture', async () => {
    const { index, data, problems } = await indexStore(compiled, new FileStore(join(CREDENTIALS, 'valid.yaml')));
    expect(problems).toEqual([]);
    expect(data!.accounts.map((a) => a.name)).toEqual(['ci-deployer', 'report bot']);
    const creds = index!;
    expect(creds.tokensByHash.size).toBe(2);
    expect(creds.byId.get('tok_aaaaaaaaaaaaa1')!.grant.header).toBe('certs:read');
    expect(creds.byId.get('tok_aaaaaaaaaaaaa2')!.revoked).toBe(true);
    expect(creds.certURIPatterns).toHaveLength(1);
  });
});
