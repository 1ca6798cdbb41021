// Certificate bindings: how a verified client certificate maps to a service account. Shared by
// the CLI (`keygate cert …`) and the admin API.
import { createHash, type X509Certificate } from 'node:crypto';
import { parseInstantMs } from '../config/dates.js';
import { accountScopes } from './check.js';
import { newId } from './token-format.js';
import { uriPatternProblem } from '../matching/uri-pattern.js';
import { findAccount, OperationError, type OpContext } from './operations.js';
import type { CertBindingRecord, CertMatch, StoreData } from './types.js';

export interface BindingInput {
  account: string;
  match: CertMatch;
  value: string;
  nickname?: string;
  endDate?: string | null;
  scopes?: string[] | null;
  policy?: string | null;
  serial?: string | null;
  notAfter?: string | null;
}

const FINGERPRINT = /^(?:sha256:)?([0-9a-f]{2}(?::?[0-9a-f]{2}){31})$/i;

/** Accepts `AB:CD:…`, `abcd…` or `sha256:…`, in any case; returns 64 lowercase hex characters. */
export function normalizeFingerprint(text: string): string {
  const m = FINGERPRINT.exec(text.trim());
  if (!m) throw new OperationError('invalid', `"${text}" is not a SHA-256 fingerprint (64 hex digits, colons optional)`);
  return m[1]!.replace(/:/g, '').toLowerCase();
}

function checkValue(match: CertMatch, value: string): string {
  const v = value.trim();
  if (!v || v.length > 1024 || /[\u0000-\u001f\u007f]/.test(v)) throw new OperationError('invalid', `invalid ${match} value`);
  if (match === 'fingerprint') return normalizeFingerprint(v);
  if (match === 'uri') {
    const problem = uriPatternProblem(v);
    if (problem) throw new OperationError('invalid', problem);
  }
  if (match === 'dns') {
    // DNS names compare case-insensitively (RFC 4343); a binding is stored in lower case and
    // matched exactly — no wildcard: a certificate's own `*.example.com` SAN is matched as
    // that literal string.
    if (!/^(?:\*\.)?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/i.test(v)) throw new OperationError('invalid', `"${v}" is not a DNS name`);
    return v.toLowerCase();
  }
  return v;
}

/** The store keeps instants as ISO-8601 UTC strings, read by the one parser (config/dates.ts). */
function isoOrNull(what: string, v: string | null | undefined): string | null {
  if (v === null || v === undefined) return null;
  const ms = parseInstantMs(v);
  if (ms === undefined) throw new OperationError('invalid', `invalid ${what} "${v}": use an ISO date-time that exists (2027-01-31T23:59:59Z)`);
  return new Date(ms).toISOString();
}

/** What a fingerprint binding records of a certificate: SHA-256 of the DER, serial, notAfter. */
export function certificateFacts(x: X509Certificate): { fingerprint: string; serial: string; notAfter: string } {
  return { fingerprint: createHash('sha256').update(x.raw).digest('hex'), serial: x.serialNumber.toLowerCase(), notAfter: new Date(x.validTo).toISOString() };
}

export function bindCertificate(data: StoreData, input: BindingInput, ctx: OpContext): CertBindingRecord {
  const account = findAccount(data, input.account);
  const value = checkValue(input.match, input.value);
  const existing = data.certificates.find((c) => c.match === input.match && c.value === value);
  if (existing) throw new OperationError('conflict', `this ${input.match} is already bound (${existing.id}, account "${existing.account}")`);
  if (input.scopes && input.scopes.length) {
    const allowed = accountScopes(account, ctx.config);
    const outside = input.scopes.filter((s) => !allowed.has(s));
    if (outside.length) throw new OperationError('invalid', `a binding's scopes must be a subset of its account's: account "${account.name}" does not have ${outside.join(', ')}`);
  }
  if (input.policy && !(input.policy in ctx.config.policies)) throw new OperationError('invalid', `unknown policy "${input.policy}"`);
  const nickname = input.nickname ?? '';
  if (nickname.length > 128 || /[\u0000-\u001f\u007f]/.test(nickname)) throw new OperationError('invalid', 'a nickname has at most 128 characters and no control characters');
  const endDate = isoOrNull('end date', input.endDate);
  const record: CertBindingRecord = {
    id: input.match === 'fingerprint' ? `sha256:${value}` : newId('crt'),
    account: account.name,
    match: input.match,
    value,
    nickname,
    endDate,
    scopes: input.scopes && input.scopes.length ? input.scopes : null,
    policy: input.policy ?? null,
    createdAt: ctx.now.toISOString(),
    serial: input.serial ?? null,
    notAfter: isoOrNull('notAfter', input.notAfter),
  };
  data.certificates.push(record);
  return record;
}

/**
 * Finds a binding by id. A fingerprint binding's id is `sha256:<64 hex>`; it may be given in
 * every spelling `cert bind --fingerprint` takes (`AB:CD:…` as `openssl x509 -fingerprint`
 * prints it, bare hex, with or without `sha256:`, any case).
 */
export function findCertBinding(data: StoreData, id: string): CertBindingRecord {
  let key = id.trim();
  if (FINGERPRINT.test(key)) key = `sha256:${normalizeFingerprint(key)}`;
  const c = data.certificates.find((x) => x.id === key);
  if (!c) throw new OperationError('not_found', `no certificate binding with id "${id}" (keygate cert list shows them)`);
  return c;
}

export function unbindCertificate(data: StoreData, id: string): CertBindingRecord {
  const c = findCertBinding(data, id);
  data.certificates = data.certificates.filter((x) => x !== c);
  return c;
}
