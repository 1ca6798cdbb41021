// The development PKI (`keygate certs init`, `keygate dev`): a server CA and a server
// certificate for each host and its `clientauth.` twin, plus a separate client CA whose key
// `keygate cert issue` signs with. Never used unless a config names these files.
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { KeygateFault } from '../errors/fault.js';
import { createAuthority, issueServerCertificate } from './pki.js';

export interface DevPkiFiles {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCaCert: string;
  clientCaKey: string;
}

export function devPkiFiles(dir: string): DevPkiFiles {
  return {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCaCert: join(dir, 'client-ca.crt'),
    clientCaKey: join(dir, 'client-ca.key'),
  };
}

export function devPkiExists(dir: string): boolean {
  return Object.values(devPkiFiles(dir)).every((f) => existsSync(f));
}

/** Server names for the given hosts: each host, its client-auth twin, and loopback for localhost. */
export function serverNames(hosts: string[], prefix = 'clientauth.'): string[] {
  const names = new Set<string>();
  for (const h of hosts) {
    names.add(h);
    if (isIP(h) === 0) names.add(prefix + h);
    if (h === 'localhost') names.add('127.0.0.1');
  }
  return [...names];
}

export async function writeKey(file: string, pem: string | Buffer): Promise<void> {
  await writeFile(file, pem, { mode: 0o600 });
  await chmod(file, 0o600);
}

export class PkiExistsError extends KeygateFault {
  constructor(readonly files: string[]) {
    super('KG_ERR_PKI_EXISTS', `${files.join(', ')} already exist${files.length === 1 ? 's' : ''}; pass --force to replace ${files.length === 1 ? 'it' : 'them'} (certificates issued by the old CAs stop working)`);
  }
}

export async function initDevPki(dir: string, hosts: string[], opts: { days?: number; prefix?: string; force?: boolean } = {}): Promise<DevPkiFiles & { names: string[] }> {
  const files = devPkiFiles(dir);
  const existing = Object.values(files).filter((f) => existsSync(f));
  // Replacing a CA silently would orphan every certificate it issued: only on request.
  if (existing.length && !opts.force) throw new PkiExistsError(existing);
  await mkdir(dir, { recursive: true });
  const names = serverNames(hosts, opts.prefix);
  const ca = await createAuthority({ commonName: 'keygate development server CA', organization: 'keygate dev', days: 3650 });
  const server = await issueServerCertificate(ca.authority, { hosts: names, days: opts.days ?? 825 });
  const clientCa = await createAuthority({ commonName: 'keygate development client CA', organization: 'keygate dev', days: 3650 });
  await writeFile(files.caCert, ca.certPem);
  await writeKey(files.caKey, ca.keyPem);
  // The chain a client needs: leaf first, then its issuer.
  await writeFile(files.serverCert, server.certPem + ca.certPem);
  await writeKey(files.serverKey, server.keyPem);
  await writeFile(files.clientCaCert, clientCa.certPem);
  await writeKey(files.clientCaKey, clientCa.keyPem);
  return { ...files, names };
}
