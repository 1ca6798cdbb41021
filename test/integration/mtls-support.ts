// What the mtls-* integration tests share: a request over the client-certificate host with a
// minted certificate, CLI shortcuts for accounts and bindings, and metric reads.
import { expect } from 'vitest';
import { API_HOST, MTLS_HOST, request, type Response, type TestEnv } from '../helpers/harness.js';
import type { Issued } from '../helpers/pki.js';
import { loadConfigOrThrow } from '../../src/config/load.js';
import { bindCertificate, type BindingInput } from '../../src/store/cert-operations.js';
import { FileStore } from '../../src/store/file/file-store.js';
import { createAccount as createAccountOp, updateAccount, type AccountInput, type AccountPatch, type OpContext } from '../../src/store/operations.js';
import type { StoreData } from '../../src/store/types.js';
import { metricsOf, sample } from './support.js';

export { API_HOST, MTLS_HOST };

export interface MtlsRequest {
  port: number;
  cert?: Pick<Issued, 'certPem' | 'keyPem'> & { chainPem?: string };
  path?: string;
  method?: string;
  servername?: string;
  host?: string;
  headers?: Record<string, string>;
}

export function mtls(env: TestEnv, opts: MtlsRequest): Promise<Response> {
  return request({
    port: opts.port,
    servername: opts.servername ?? MTLS_HOST,
    host: opts.host,
    method: opts.method,
    path: opts.path ?? '/api/items/1',
    headers: opts.headers,
    ca: env.serverCa.certPem,
    ...(opts.cert ? { cert: opts.cert.certPem + (opts.cert.chainPem ?? ''), key: opts.cert.keyPem } : {}),
  });
}

/** Runs the CLI and fails the test with its stderr when it does not exit 0. */
export async function cliOk(env: TestEnv, args: string[]): Promise<string> {
  const r = await env.cli(args);
  expect(r.code, `keygate ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

export async function createAccount(env: TestEnv, name: string, roles: string[] = ['viewer'], extra: string[] = []): Promise<void> {
  await cliOk(env, ['account', 'create', '--name', name, ...roles.flatMap((r) => ['--role', r]), ...extra]);
}

/** `keygate cert bind`; returns the binding id printed on stdout. */
export async function bind(env: TestEnv, account: string, match: 'fingerprint' | 'cn' | 'dns' | 'uri' | 'file', value: string, extra: string[] = []): Promise<string> {
  return (await cliOk(env, ['cert', 'bind', '--account', account, `--${match}`, value, ...extra])).trim();
}

/**
 * Writes accounts and bindings straight into the credential file (the same operations the CLI
 * runs, without a child process per call): for test set-up. The CLI itself is tested in
 * test/cli/cert.test.ts.
 */
export async function seed(env: TestEnv, fn: (data: StoreData, ctx: OpContext) => void): Promise<void> {
  const { config } = loadConfigOrThrow(env.configFile);
  await new FileStore(config.store.file).update((data) => fn(data, { config, now: new Date() }));
}

export const ops = {
  account: (data: StoreData, ctx: OpContext, input: AccountInput, patch?: AccountPatch) => {
    createAccountOp(data, { roles: ['viewer'], ...input }, ctx);
    if (patch) updateAccount(data, input.name, patch, ctx);
  },
  bind: (data: StoreData, ctx: OpContext, input: BindingInput) => bindCertificate(data, input, ctx),
};

/** The metrics of a running keygate binary, from its admin listener. */
export async function metricsText(proxy: { adminPort: number }): Promise<string> {
  return metricsOf(proxy);
}

export async function authFailures(proxy: { adminPort: number }, reason: string): Promise<number> {
  return sample(await metricsText(proxy), 'keygate_auth_failures_total', { reason });
}

/** The problem+json code of a keygate answer. */
export function code(res: Response): unknown {
  return res.json().code;
}
