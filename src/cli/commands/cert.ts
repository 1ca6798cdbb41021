// keygate cert issue | bind | list | unbind — client certificates of service accounts. A
// binding maps a verified client certificate to an account, by fingerprint (one certificate)
// or by a name the trusted CA vouches for (subject CN, DNS SAN, URI SAN / SPIFFE ID pattern).
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { pemCertificates } from '../../listener/tls-material.js';
import { issueAccountCertificate } from '../../pki/account-certificate.js';
import { bindCertificate, certificateFacts, unbindCertificate, type BindingInput } from '../../store/cert-operations.js';
import { bindingStatus, parseOptionalExpiry } from '../../store/operations.js';
import type { CertBindingRecord, CertMatch, UsageMap } from '../../store/types.js';
import type { Register } from '../program.js';
import { CliError, collect, examples, formatOf, mutate, usage, openManagement, readInventory, render, renderRecord, withConfigOption, withFormatOption, withVerboseOption, type Management } from '../support.js';

/** Paths under the working folder print relative (shorter to paste), others absolute. */
function rel(file: string): string {
  const r = relative(process.cwd(), file);
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : resolve(file);
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

/** The inventory view of a binding. */
export function bindingRow(c: CertBindingRecord, usage: UsageMap, nowMs: number) {
  return {
    id: c.id,
    account: c.account,
    match: c.match,
    value: c.value,
    nickname: c.nickname,
    status: bindingStatus(c, nowMs),
    scopes: c.scopes ?? [],
    ownScopes: c.scopes !== null,
    policy: c.policy,
    createdAt: c.createdAt,
    endDate: c.endDate,
    notAfter: c.notAfter,
    serial: c.serial,
    lastUsedAt: iso(usage[c.id]),
  };
}

export const BINDING_COLUMNS = ['id', 'account', 'match', 'value', 'nickname', 'status', 'scopes', 'policy', 'createdAt', 'endDate', 'notAfter', 'lastUsedAt'];

const endDateOption = (text: string | undefined): string | null => usage(() => parseOptionalExpiry(text, new Date()));

/** A certificate file in PEM (the first certificate, i.e. the leaf of a chain) or DER. */
function readCertificate(file: string): X509Certificate {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CliError(`cannot read ${file}: file not found`, 'KG_ERR_NOT_FOUND');
    throw new CliError(`cannot read ${file}: ${code ?? (err as Error).message}`);
  }
  try {
    const text = buf.toString('latin1');
    if (text.includes('-----BEGIN')) {
      const first = pemCertificates(text)[0];
      if (!first) throw new Error('no PEM certificate in it');
      return first;
    }
    return new X509Certificate(buf);
  } catch (err) {
    throw new CliError(`${file} is not a certificate (PEM or DER): ${(err as Error).message}`);
  }
}

/** A warning when no configured client CA issued the certificate itself (it may still chain through an intermediate). */
function trustNote(m: Management, cert: X509Certificate): string | undefined {
  const cas: X509Certificate[] = [];
  for (const file of m.config.listen.clientAuth.ca ?? []) {
    try {
      cas.push(...pemCertificates(readFileSync(file, 'utf8')));
    } catch {
      // keygate check reports unreadable CA files; the binding itself does not need them
    }
  }
  if (cas.length === 0) return 'listen.clientAuth.ca is not set: keygate trusts no client certificate until it is';
  if (cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) return undefined;
  return `no configured client CA issued "${cert.subject.replace(/\n/g, ', ')}" directly: it is admitted only if its chain (sent by the client) leads to listen.clientAuth.ca`;
}

export const registerCert: Register = (program, io, env) => {
  const cert = program.command('cert').description('client certificates of service accounts');
  examples(cert, 'keygate cert issue --account ci-deployer --out ./certs', 'keygate cert bind --account payments --file payments-client.pem', 'keygate cert list --format json');

  const issue = withVerboseOption(withFormatOption(withConfigOption(cert.command('issue')), undefined, true))
    .description('issue a client certificate for an account, signed by listen.clientAuth.caKey, and bind it by fingerprint')
    .requiredOption('--account <name>', 'the service account it proves')
    .requiredOption('--out <dir>', 'folder for <account>.crt and <account>.key (and .p12)')
    .option('--days <n>', 'validity in days', '90')
    .option('--p12', 'also write a PKCS#12 bundle (RSA key) protected by a generated password, printed once')
    .option('--nickname <text>', 'what or where it is used')
    .option('--scope <scope...>', "own scopes, a subset of the account's; default: the account's", collect)
    .option('--policy <name>', 'rate-limit policy; default: the account\'s, else "default"')
    .option('--force', 'replace files of an earlier issue in --out')
    .action(async (opts: { config: string; verbose?: boolean; account: string; out: string; days: string; p12?: boolean; nickname?: string; scope?: string[]; policy?: string; force?: boolean; format?: string; json?: boolean }) => {
      const format = formatOf(opts);
      if (!/^\d+$/.test(opts.days)) throw new CliError(`invalid --days "${opts.days}": a whole number of days`, 'KG_ERR_USAGE');
      const m = openManagement(opts, io, env);
      const r = await issueAccountCertificate(m.config, m.store, { account: opts.account, days: Number(opts.days), outDir: opts.out, p12: opts.p12, nickname: opts.nickname, scopes: opts.scope ?? null, policy: opts.policy ?? null, force: opts.force });
      m.audit({ event: 'cert.issued', target: r.binding.id, account: r.binding.account, serial: r.issued.serial, notAfter: r.binding.notAfter, p12: Boolean(r.p12) });
      if (format !== 'table') {
        io.out(renderRecord(format, { ...bindingRow(r.binding, {}, Date.now()), fingerprint: r.issued.fingerprint, certFile: r.certFile, keyFile: r.keyFile, ...(r.p12 ? { p12File: r.p12.file, p12Password: r.p12.password } : {}) }));
      } else {
        const lines = [
          `certificate  ${rel(r.certFile)}`,
          `key          ${rel(r.keyFile)}  (mode 0600)`,
          ...(r.p12 ? [`pkcs12       ${rel(r.p12.file)}  (mode 0600)`, `password     ${r.p12.password}`] : []),
          `binding      ${r.binding.id}  (account "${r.binding.account}", valid until ${r.binding.notAfter})`,
        ];
        io.out(lines.join('\n') + '\n');
      }
      io.err(`certificate issued for account "${r.binding.account}" and bound as ${r.binding.id}\n`);
      if (r.p12) io.err(`Store the PKCS#12 password now: it is not shown again and keygate does not keep it.\n`);
    });
  examples(issue, 'keygate cert issue --account ci-deployer --out ./certs --days 30', 'keygate cert issue --account ci-deployer --out ./certs --p12 --format json');

  const bind = withVerboseOption(withFormatOption(withConfigOption(cert.command('bind')), undefined, true))
    .description('bind a certificate issued elsewhere (company PKI, SPIFFE) to an account')
    .requiredOption('--account <name>', 'the service account it proves')
    .option('--fingerprint <sha256>', 'one certificate, by SHA-256 fingerprint (hex, colons optional)')
    .option('--cn <name>', 'every trusted certificate with this subject CN')
    .option('--uri <uri>', 'every trusted certificate with this URI SAN; * is one segment, ** any (spiffe://td/ns/prod/sa/*)')
    .option('--dns <name>', 'every trusted certificate with this DNS SAN')
    .option('--file <cert.pem>', 'one certificate, read from a PEM or DER file (bound by fingerprint)')
    .option('--nickname <text>', 'what or where it is used')
    .option('--end-date <when>', 'when the binding stops admitting: a date (2027-01-31), a duration (90d) or an ISO time; default: never')
    .option('--scope <scope...>', "own scopes, a subset of the account's; default: the account's", collect)
    .option('--policy <name>', 'rate-limit policy; default: the account\'s, else "default"')
    .action(async (opts: { config: string; verbose?: boolean; account: string; fingerprint?: string; cn?: string; uri?: string; dns?: string; file?: string; nickname?: string; endDate?: string; scope?: string[]; policy?: string; format?: string; json?: boolean }) => {
      const format = formatOf(opts);
      const given = (['fingerprint', 'cn', 'uri', 'dns', 'file'] as const).filter((k) => opts[k] !== undefined);
      if (given.length !== 1) throw new CliError('name exactly one of --fingerprint, --cn, --uri, --dns or --file', 'KG_ERR_USAGE');
      const endDate = endDateOption(opts.endDate);
      const m = openManagement(opts, io, env);
      const kind = given[0]!;
      const input: BindingInput = { account: opts.account, match: kind === 'file' ? 'fingerprint' : (kind as CertMatch), value: opts[kind]!, nickname: opts.nickname, endDate, scopes: opts.scope ?? null, policy: opts.policy ?? null };
      let note: string | undefined;
      if (opts.file) {
        const x = readCertificate(opts.file);
        if (Date.parse(x.validTo) <= Date.now()) throw new CliError(`${opts.file} expired at ${new Date(x.validTo).toISOString()}; bind a current certificate`);
        if (x.ca) throw new CliError(`${opts.file} is a CA certificate; bind the client certificate it issued (or add the CA to listen.clientAuth.ca and bind by --cn/--uri/--dns)`);
        const facts = certificateFacts(x);
        input.value = facts.fingerprint;
        input.serial = facts.serial;
        input.notAfter = facts.notAfter;
        if (!input.nickname) input.nickname = x.subject.replace(/\n/g, ', ').slice(0, 128);
        note = trustNote(m, x);
      }
      const b = await mutate(m, (data) => bindCertificate(data, input, m.op()));
      m.audit({ event: 'cert.bound', target: b.id, account: b.account, match: b.match, value: b.value, endDate: b.endDate });
      // table: the id alone, to capture; json and csv: the binding.
      io.out(format === 'table' ? `${b.id}\n` : renderRecord(format, bindingRow(b, {}, Date.now())));
      io.err(`bound ${b.match} ${b.match === 'fingerprint' ? b.value : `"${b.value}"`} to account "${b.account}"${b.endDate ? ` until ${b.endDate}` : ''}\n`);
      if (note) io.err(`keygate: warning: ${note}\n`);
    });
  examples(
    bind,
    'keygate cert bind --account payments --file payments-client.pem',
    'keygate cert bind --account payments --fingerprint AB:CD:…:EF --end-date 90d',
    "keygate cert bind --account batch --uri 'spiffe://prod.example.com/ns/batch/sa/*'",
  );

  const list = withFormatOption(withConfigOption(cert.command('list')))
    .description('certificate binding inventory')
    .option('--account <name>', 'only this account')
    .option('--status <status>', 'active or expired')
    .action(async (opts: { config: string; account?: string; status?: string; format?: string }) => {
      const format = formatOf(opts);
      if (opts.status && !['active', 'expired'].includes(opts.status)) throw new CliError(`unknown status "${opts.status}": use active or expired`, 'KG_ERR_USAGE');
      const m = openManagement(opts, io, env);
      const [data, usage] = await Promise.all([readInventory(m), m.store.readUsage()]);
      const now = Date.now();
      const rows = data.certificates
        .filter((c) => opts.account === undefined || c.account === opts.account)
        .map((c) => bindingRow(c, usage, now))
        .filter((r) => opts.status === undefined || r.status === opts.status);
      io.out(render(format, rows, BINDING_COLUMNS));
    });
  examples(list, 'keygate cert list --account payments', 'keygate cert list --status expired --format csv');

  const unbind = withVerboseOption(withConfigOption(cert.command('unbind')))
    .description('remove a binding: the certificate (or names) it matched no longer prove the account (a running proxy within 1 s)')
    .argument('<id>', 'binding id from cert list (crt_…), or a fingerprint binding by its fingerprint in any spelling cert bind takes (sha256:…, AB:CD:…, abcd…)')
    .action(async (id: string, opts: { config: string; verbose?: boolean }) => {
      const m = openManagement(opts, io, env);
      const b = await mutate(m, (data) => unbindCertificate(data, id));
      m.audit({ event: 'cert.unbound', target: b.id, account: b.account, match: b.match, value: b.value });
      io.err(`binding ${b.id} removed from account "${b.account}"\n`);
    });
  examples(unbind, 'keygate cert unbind crt_3kQ9zP1wXy7LmN', 'keygate cert unbind AB:CD:…:EF   # as openssl x509 -fingerprint -sha256 prints it');
};
