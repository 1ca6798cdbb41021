// Schema of the credential file. Strict like keygate.yaml: an unknown key is an error, so a
// hand edit with a typo is caught by `keygate check` and refused by a running proxy.
import { z } from 'zod';
import { isDay, isInstant } from '../config/dates.js';
import type { StoreData } from './types.js';

export const ACCOUNT_NAME = /^[A-Za-z0-9 _-]{1,64}$/;

// Dates through the one parser (config/dates.ts): a day or an instant that does not exist is
// an error at its line, never rolled over.
const isoTime = z.string().refine(isInstant, 'an ISO 8601 date-time that exists, with an offset (2027-01-31T23:59:59.999Z)');
const nullableTime = isoTime.nullable().default(null);
const nameList = z.array(z.string().min(1)).default([]);

const account = z.strictObject({
  name: z.string().regex(ACCOUNT_NAME, 'account names use letters, digits, spaces, - and _ (at most 64)').refine((n) => n.trim() === n, 'account names do not start or end with a space'),
  description: z.string().default(''),
  owner: z.string().default(''),
  endDate: z.string().refine(isDay, 'endDate is a day that exists: YYYY-MM-DD').nullable().default(null),
  roles: nameList,
  scopes: nameList,
  policy: z.string().nullable().default(null),
  disabled: z.boolean().default(false),
  createdAt: isoTime,
  updatedAt: isoTime,
});

const token = z.strictObject({
  id: z.string().regex(/^tok_[0-9A-Za-z]{1,32}$/, 'token ids look like tok_…'),
  account: z.string().min(1),
  label: z.string().default(''),
  hash: z.string().regex(/^[0-9a-f]{64}$/, 'hash is a lowercase hex SHA-256'),
  environment: z.string().nullable().default(null),
  scopes: z.array(z.string().min(1)).nullable().default(null),
  policy: z.string().nullable().default(null),
  status: z.enum(['active', 'revoked']),
  createdAt: isoTime,
  expiresAt: nullableTime,
  revokedAt: nullableTime,
  revokeReason: z.string().nullable().default(null),
  rotatedFrom: z.string().nullable().default(null),
  rotatedTo: z.string().nullable().default(null),
});

const certificate = z.strictObject({
  id: z.string().min(1),
  account: z.string().min(1),
  match: z.enum(['fingerprint', 'cn', 'dns', 'uri']),
  value: z.string().min(1),
  nickname: z.string().default(''),
  endDate: nullableTime,
  scopes: z.array(z.string().min(1)).nullable().default(null),
  policy: z.string().nullable().default(null),
  createdAt: isoTime,
  serial: z.string().nullable().default(null),
  notAfter: nullableTime,
});

/** One record of each list, for readers that validate record by record (store/file/layout.ts). */
export const recordSchemas = { accounts: account, tokens: token, certificates: certificate } as const;

export const storeSchema = z.strictObject({
  version: z.literal(1),
  accounts: z.array(account).default([]),
  tokens: z.array(token).default([]),
  certificates: z.array(certificate).default([]),
}) satisfies z.ZodType<StoreData, unknown>;
