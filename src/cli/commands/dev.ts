// keygate dev (npm start): the embedded demo. Creates the dev PKI if missing, starts an echo
// API on the route's loopback upstream, runs keygate in front of it with this config, makes a
// demo account with a fresh token and a client certificate, and prints curl commands that
// work as pasted.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { mountAdminApi } from '../../admin/api.js';
import { loadConfig } from '../../config/load.js';
import type { KeygateConfig } from '../../config/schema.js';
import { SourceError } from '../../config/source.js';
import { startEchoUpstream, type EchoServer } from '../../dev/echo-upstream.js';
import { startKeygate } from '../../instance.js';
import { pemCertificates } from '../../listener/tls-material.js';
import { issueAccountCertificate } from '../../pki/account-certificate.js';
import { initDevPki } from '../../pki/dev-pki.js';
import { certificateFacts } from '../../store/cert-operations.js';
import { createAccount, createToken, deleteToken } from '../../store/operations.js';
import type { CredentialStore } from '../../store/types.js';
import type { Register } from '../program.js';
import { CliError, examples, openStore, withConfigOption, type Io } from '../support.js';

const DEMO_ACCOUNT = 'demo';
const DEMO_LABEL = 'keygate dev';

async function ensurePki(config: KeygateConfig, io: Io): Promise<void> {
  const { tls, clientAuth } = config.listen;
  const needed = [tls.cert, tls.key, ...(clientAuth.ca ?? []), ...(clientAuth.caKey ? [clientAuth.caKey] : [])];
  if (needed.every((f) => existsSync(f))) return;
  const dir = dirname(tls.cert);
  io.err(`keygate dev: creating the development PKI in ${relative(process.cwd(), dir) || '.'}/ (CA, server certificate for localhost and clientauth.localhost, client CA)\n`);
  await initDevPki(dir, ['localhost'], { prefix: clientAuth.hostPrefix, force: true });
  const missing = needed.filter((f) => !existsSync(f));
  if (missing.length) throw new CliError(`the config names TLS files the dev PKI does not create: ${missing.join(', ')}`);
}

async function ensureDemoCredentials(config: KeygateConfig, store: CredentialStore, certDir: string): Promise<{ secret: string; certFile?: string; keyFile?: string }> {
  const ctx = { config, now: new Date() };
  const secret = await store.update((data) => {
    if (!data.accounts.some((a) => a.name === DEMO_ACCOUNT)) {
      const roles = 'operator' in config.roles ? ['operator'] : Object.keys(config.roles);
      createAccount(data, { name: DEMO_ACCOUNT, description: 'demo account created by keygate dev', owner: 'demo@example.com', roles, scopes: roles.length ? [] : Object.keys(config.scopes) }, ctx);
    }
    // One demo token at a time: the previous run's is replaced.
    for (const t of data.tokens.filter((x) => x.account === DEMO_ACCOUNT && x.label === DEMO_LABEL)) deleteToken(data, t.id);
    return createToken(data, { account: DEMO_ACCOUNT, label: DEMO_LABEL, expiresAt: new Date(Date.now() + 30 * 86_400_000).toISOString() }, ctx).secret;
  });
  const ca = config.listen.clientAuth;
  if (!ca.ca?.length || !ca.caKey) return { secret };
  const certFile = `${certDir}/demo.crt`;
  const keyFile = `${certDir}/demo.key`;
  if (existsSync(certFile) && existsSync(keyFile)) {
    const x = new X509Certificate(readFileSync(certFile));
    const fp = certificateFacts(x).fingerprint;
    const data = await store.read();
    // Reuse it only while it would still work: current, bound, and issued by today's client CA
    // (a `certs init --force` replaces the CA and orphans the old demo certificate).
    const issuers = ca.ca.flatMap((f) => pemCertificates(readFileSync(f, 'utf8')));
    const trusted = issuers.some((c) => x.checkIssued(c) && x.verify(c.publicKey));
    if (trusted && Date.parse(x.validTo) > Date.now() && data.certificates.some((c) => c.value === fp && c.account === DEMO_ACCOUNT)) return { secret, certFile, keyFile };
    await store.update((d) => {
      d.certificates = d.certificates.filter((c) => !(c.account === DEMO_ACCOUNT && c.nickname === DEMO_LABEL));
    });
  }
  const issued = await issueAccountCertificate(config, store, { account: DEMO_ACCOUNT, outDir: certDir, days: 30, nickname: DEMO_LABEL, force: true });
  return { secret, certFile: issued.certFile, keyFile: issued.keyFile };
}

function localEchoPorts(config: KeygateConfig): number[] {
  const ports = new Set<number>();
  for (const r of config.routes) {
    const u = new URL(r.upstream);
    if (u.protocol === 'http:' && (u.hostname === '127.0.0.1' || u.hostname === 'localhost')) ports.add(Number(u.port || 80));
  }
  return [...ports];
}

export const registerDev: Register = (program, io, env) => {
  const dev = withConfigOption(program.command('dev'))
    .description('run the demo: dev PKI, an echo API, keygate in front of it, a demo account with a token and a client certificate')
    .action(async (opts: { config: string }) => {
      const { loaded, problems } = loadConfig(opts.config, env);
      if (!loaded) throw new SourceError(problems);
      const config = loaded.config;
      await ensurePki(config, io);
      const rel = (f: string) => relative(process.cwd(), f) || f;
      const echoes: EchoServer[] = [];
      for (const port of localEchoPorts(config)) {
        try {
          echoes.push(await startEchoUpstream(port));
        } catch (err) {
          for (const e of echoes) await e.close();
          throw new CliError(`cannot start the demo API on 127.0.0.1:${port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (is another demo running?)`);
        }
      }
      const store = openStore(config, io);
      const demo = await ensureDemoCredentials(config, store, dirname(config.listen.tls.cert));
      let instance;
      try {
        instance = await startKeygate({ configFile: opts.config, env, adminApi: mountAdminApi });
      } catch (err) {
        for (const e of echoes) await e.close();
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new CliError(`port already in use: ${(err as Error).message} (is another keygate running?)`);
        throw err;
      }
      const port = instance.https.port;
      const ca = rel(`${dirname(config.listen.tls.cert)}/ca.crt`);
      const prefix = config.listen.clientAuth.hostPrefix;
      const lines = [
        '',
        `keygate dev is running: https://localhost:${port} → demo API on ${echoes.map((e) => `127.0.0.1:${e.address.port}`).join(', ') || 'the configured upstream'}`,
        `admin: http://${instance.admin ? `${instance.admin.address}:${instance.admin.port}` : '(disabled)'}/metrics   config: ${rel(loaded.file)}   credentials: ${rel(config.store.file)}`,
        '',
        `1) with the demo API token (account "${DEMO_ACCOUNT}"):`,
        `   curl --cacert ${ca} -H "x-api-key: ${demo.secret}" https://localhost:${port}/api/v1/certificates`,
        '',
      ];
      if (demo.certFile && demo.keyFile) {
        lines.push(
          `2) with the demo client certificate, on the ${prefix} host:`,
          `   curl --cacert ${ca} --cert ${rel(demo.certFile)} --key ${rel(demo.keyFile)} --resolve ${prefix}localhost:${port}:127.0.0.1 https://${prefix}localhost:${port}/api/v1/certificates`,
          '',
        );
      }
      lines.push(
        `3) refused: no credential (401), and a path the demo account has no scope for (403):`,
        `   curl --cacert ${ca} https://localhost:${port}/api/v1/certificates`,
        `   curl --cacert ${ca} -H "x-api-key: ${demo.secret}" -X PUT https://localhost:${port}/api/v1/admin`,
        '',
        'The API answers with the identity headers keygate added (x-keygate-*). Audit lines follow on stdout. Ctrl-C stops.',
        '',
      );
      io.out(lines.join('\n') + '\n');
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void instance.drain(5_000).then(async () => {
            for (const e of echoes) await e.close();
            resolve();
          });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        process.on('SIGHUP', () => void instance.reload('SIGHUP'));
      });
    });
  examples(dev, 'npm start   # the same, from a checkout', 'keygate dev -c config/keygate.yaml');
};
