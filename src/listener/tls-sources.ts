// The certificate sources of one config: the public listener's identity (listen.tls), the
// client trust (listen.clientAuth CAs and CRLs), the admin listener's identity (admin.tls),
// and what is composed from them. Each file source reloads on its own when its files change;
// the composed ones follow. Opening throws TlsMaterialError, positioned by its config path.
import type { KeygateConfig } from '../config/schema.js';
import { DerivedSource, FileSource, type CertificateSource } from './certificate-source.js';
import { composeAdminOptions, composeMaterial, loadClientTrust, loadServerIdentity, type ClientTrust, type ServerIdentity, type TlsMaterial } from './tls-material.js';

export interface TlsSources {
  /** What the public listener serves. */
  readonly material: CertificateSource<TlsMaterial>;
  /** What the admin listener serves, when admin.tls is set. */
  readonly admin: CertificateSource<{ readonly options: import('node:tls').SecureContextOptions }> | undefined;
  /** The sources read from files, each to be watched and reloaded on its own. */
  readonly files: ReadonlyArray<CertificateSource<ServerIdentity | ClientTrust>>;
}

export function openTlsSources(config: KeygateConfig, onComposeError: (source: string, error: unknown) => void): TlsSources {
  const server = new FileSource<ServerIdentity>('tls', () => loadServerIdentity(config.listen.tls, ['listen', 'tls']));
  const trust = new FileSource<ClientTrust>('client trust', () => loadClientTrust(config.listen.clientAuth));
  const material = new DerivedSource('tls', server, trust, composeMaterial, (e) => onComposeError('tls', e));
  const files: Array<CertificateSource<ServerIdentity | ClientTrust>> = [server, trust];
  let admin: TlsSources['admin'];
  const adminTls = config.admin.enabled ? config.admin.tls : null;
  if (adminTls) {
    const identity = new FileSource<ServerIdentity>('admin tls', () => loadServerIdentity(adminTls, ['admin', 'tls']));
    admin = new DerivedSource('admin tls', identity, trust, composeAdminOptions, (e) => onComposeError('admin tls', e));
    files.push(identity);
  }
  return { material, admin, files };
}
