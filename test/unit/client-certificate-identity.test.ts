// What keygate reads from a verified client certificate and how it matches bindings, without
// a network: URI patterns (segments, dot segments, precedence), the subject in RFC 2253 form,
// and the XFCC value for subjects and SANs a header could not carry as they are.
import 'reflect-metadata';
import { Buffer } from 'node:buffer';
import { X509Certificate } from 'node:crypto';
import { BasicConstraintsExtension, X509CertificateGenerator } from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeCertificate, rfc2253 } from '../../src/identify/peer-certificate.js';
import { compileUriPattern, uriPatternProblem } from '../../src/matching/uri-pattern.js';
import { compareSpecificity } from '../../src/matching/wildcard.js';
import { mintCa, mintClient, type Authority } from '../helpers/pki.js';

describe('URI binding patterns', () => {
  it.each([
    ['spiffe://td/ns/prod/sa/*', 'spiffe://td/ns/prod/sa/api', true],
    ['spiffe://td/ns/prod/sa/*', 'spiffe://td/ns/prod/sa/api/x', false],
    ['spiffe://td/ns/prod/sa/*', 'spiffe://td/ns/prod/sa/', false],
    ['spiffe://td/ns/**', 'spiffe://td/ns/a/b/c', true],
    ['spiffe://td/ns/**', 'spiffe://td/ns', false],
    ['spiffe://td/ns/**', 'spiffe://td/ns//a', false],
    ['spiffe://td/ns/**', 'spiffe://td/ns/../etc', false],
    ['spiffe://td/ns/**', 'spiffe://td/ns/a/./b', false],
    ['spiffe://td/**/sa/deployer', 'spiffe://td/sa/deployer', true],
    ['spiffe://td/**/sa/deployer', 'spiffe://td/ns/prod/sa/deployer', true],
    ['spiffe://*/ns/prod', 'spiffe://other.td/ns/prod', true],
    ['spiffe://td.test/*', 'spiffe://tdxtest/a', false],
    ['spiffe://td/a+b/*', 'spiffe://td/a+b/c', true],
    ['spiffe://td/a+b/*', 'spiffe://td/aab/c', false],
  ])('%s against %s: %s', (pattern, uri, matches) => {
    expect(compileUriPattern(pattern).matches(uri)).toBe(matches);
  });

  it.each([
    ['spiffe://td/ns/prod-*', /whole segments/],
    ['spiffe://td/ns/***', /whole segments/],
    ['*://td/ns', /not a URI/],
    ['urn:example:*', /not for the scheme or a URN/],
    ['td/ns/*', /not a URI/],
    ['spiffe://td/a b/*', /spaces/],
  ])('refuses %s', (pattern, why) => {
    expect(uriPatternProblem(pattern)).toMatch(why);
    // A hand-edited store that holds one anyway matches nothing.
    expect(compileUriPattern(pattern).matches('spiffe://td/ns/prod-x')).toBe(false);
  });

  it('matches a long URI against patterns with many "**" without blowing up', () => {
    // The matcher walks the URI once (matching/wildcard.ts), so there is no cap on "**" or on
    // segments to keep it safe. Bounded work, not a timing assertion: it has to finish.
    const uri = 'spiffe://td/' + 'x/'.repeat(2_000) + 'y';
    expect(compileUriPattern('spiffe://td/**/a/**/b').matches(uri)).toBe(false);
    expect(compileUriPattern('spiffe://td/**/x/**').matches(uri)).toBe(true);
    expect(compileUriPattern('spiffe://td/**/a/**/b/**/c/**/d/**').matches(uri)).toBe(false);
    expect(compileUriPattern('spiffe://td/**/x/**/x/**/x/**/y').matches(uri)).toBe(true);
    expect(compileUriPattern(`spiffe://td/${'*/'.repeat(2_000)}y`).matches(uri)).toBe(true);
  });

  it('accepts what the old matcher had to cap: many "**", "**/**" (the same as one), long patterns', () => {
    for (const p of ['spiffe://td/**/a/**/b/**', 'spiffe://td/a/**/**/b', `spiffe://td/${'a/'.repeat(40)}*`]) expect(uriPatternProblem(p)).toBeUndefined();
    expect(compileUriPattern('spiffe://td/a/**/**/b').matches('spiffe://td/a/b')).toBe(true);
    expect(compileUriPattern('spiffe://td/a/**/**/b').matches('spiffe://td/a/x/y/b')).toBe(true);
  });

  it('orders the most specific pattern first, then the earlier binding', () => {
    const b = (value: string, createdAt = '2025-01-01T00:00:00Z') => ({ value, createdAt });
    const sorted = [b('spiffe://td/**'), b('spiffe://td/ns/*/sa/*'), b('spiffe://td/ns/prod/**'), b('spiffe://td/ns/prod/*'), b('spiffe://td/ns/prod/*', '2024-01-01T00:00:00Z')].sort(compareSpecificity);
    expect(sorted.map((x) => `${x.value} ${x.createdAt.slice(0, 4)}`)).toEqual([
      'spiffe://td/ns/prod/* 2024',
      'spiffe://td/ns/prod/* 2025',
      'spiffe://td/ns/prod/** 2025',
      'spiffe://td/ns/*/sa/* 2025',
      'spiffe://td/** 2025',
    ]);
  });
});

describe('the subject in RFC 2253 form', () => {
  it('reverses the RDNs and escapes what RFC 4514 says', () => {
    expect(rfc2253([{ C: ['US'] }, { O: ['Acme, Inc.'] }, { OU: ['a', 'b'] }, { CN: [' lead#'] }])).toBe('CN=\\ lead#,OU=a+OU=b,O=Acme\\, Inc.,C=US');
    expect(rfc2253([{ CN: ['#hash', 'trail '] }])).toBe('CN=\\#hash+CN=trail\\ ');
    expect(rfc2253([{ E: ['a@b.test'] }, { CN: ['x;y<z>"q"\\'] }])).toBe('CN=x\\;y\\<z\\>\\"q\\"\\\\,emailAddress=a@b.test');
  });

  it('writes non-ASCII and control characters as \\hh UTF-8 bytes', () => {
    expect(rfc2253([{ CN: ['Zoë\u0007'] }])).toBe('CN=Zo\\c3\\ab\\07');
  });
});

describe('describeCertificate', () => {
  let ca: Authority;
  beforeAll(async () => {
    ca = (await mintCa('unit CA')).authority;
  });

  const describeIssued = async (opts: Parameters<typeof mintClient>[1]) => {
    const issued = await mintClient(ca, opts);
    return { issued, peer: describeCertificate(new X509Certificate(issued.certPem).raw) };
  };

  it('reads fingerprint, CN, SANs and builds the XFCC value once', async () => {
    const { issued, peer } = await describeIssued({ commonName: 'job', dns: ['a.test'], uris: ['spiffe://td/x', 'urn:x:y'] });
    expect(peer).toMatchObject({ fingerprint: issued.fingerprint, cn: 'job', dns: ['a.test'], uris: ['spiffe://td/x', 'urn:x:y'], subject: 'CN=job' });
    expect(peer.xfcc).toBe(`Hash=${issued.fingerprint};Subject="CN=job";URI=spiffe://td/x;URI=urn:x:y;DNS=a.test`);
  });

  it('keeps the XFCC header printable ASCII and parseable whatever the names hold', async () => {
    const { peer } = await describeIssued({ commonName: 'Zoë "quoted"; a=b', uris: ['urn:a;b=c'] });
    expect(peer.cn).toBe('Zoë "quoted"; a=b');
    expect(peer.xfcc).toMatch(/^[\x20-\x7e]+$/);
    expect(peer.xfcc).toContain('Subject="CN=Zo\\\\c3\\\\ab \\\\\\"quoted\\\\\\"\\\\; a=b"');
    expect(peer.xfcc).toContain(';URI="urn:a;b=c"');
    expect(Buffer.byteLength(peer.xfcc)).toBe(peer.xfcc.length);
  });

  it('a subject with two CNs matches no CN binding', async () => {
    const one = await mintClient(ca, { commonName: 'first' });
    expect(describeCertificate(new X509Certificate(one.certPem).raw).cn).toBe('first');
    const two = await X509CertificateGenerator.create({
      serialNumber: '01',
      subject: 'CN=first, CN=second',
      issuer: ca.cert.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
      publicKey: ca.keys.publicKey,
      signingKey: ca.keys.privateKey,
      signingAlgorithm: ca.signingAlgorithm,
      extensions: [new BasicConstraintsExtension(false)],
    });
    const peer = describeCertificate(new Uint8Array(two.rawData));
    expect(peer.cn).toBeUndefined();
    expect(peer.subject).toBe('CN=second,CN=first');
  });
});
