// Admin API request bodies: each bounded and validated with a strict schema, read with a size
// limit, JSON only. A body that does not fit is a 400 (or 413) naming what is wrong.
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { KeygateFault } from '../errors/fault.js';

/** Largest request body the admin API reads; every valid body is far smaller. */
export const MAX_BODY_BYTES = 64 * 1024;

export const bad = (message: string) => new KeygateFault('KG_ERR_BAD_REQUEST', message);

const text = (max: number) => z.string().max(max);
const nameList = z.array(z.string().min(1).max(128)).max(256);
const accountFields = {
  description: text(1024).optional(),
  owner: text(254).optional(),
  endDate: z.string().max(32).nullable().optional(),
  roles: nameList.optional(),
  scopes: nameList.optional(),
  policy: z.string().max(128).nullable().optional(),
};
export const accountCreateBody = z.strictObject({ name: z.string().max(64), ...accountFields });
export const accountPatchBody = z.strictObject(accountFields).refine((p) => Object.values(p).some((v) => v !== undefined), 'give at least one field to change');
export const tokenCreateBody = z.strictObject({
  account: z.string().max(64),
  label: text(128).optional(),
  scopes: nameList.nullable().optional(),
  /** A duration (30d), a day (2027-01-31, ends 23:59:59.999 UTC) or a date-time; null = never. */
  expires: z.string().max(64).nullable().optional(),
  policy: z.string().max(128).nullable().optional(),
});
export const revokeBody = z.strictObject({ reason: text(512).optional() });
export const emptyBody = z.strictObject({});
export const rotateBody = z.strictObject({ overlap: z.string().max(32).optional(), expires: z.string().max(64).nullable().optional() });
export const bindBody = z
  .strictObject({
    account: z.string().max(64),
    match: z.enum(['fingerprint', 'cn', 'dns', 'uri']).optional(),
    value: z.string().max(1024).optional(),
    /** A PEM certificate: bound by its SHA-256 fingerprint, its notAfter kept. */
    certificate: z.string().max(32_768).optional(),
    nickname: text(128).optional(),
    endDate: z.string().max(64).nullable().optional(),
    scopes: nameList.nullable().optional(),
    policy: z.string().max(128).nullable().optional(),
  })
  .refine((b) => (b.certificate !== undefined ? b.match === undefined && b.value === undefined : b.match !== undefined && b.value !== undefined), {
    message: 'give either "certificate" (PEM) or both "match" and "value"',
  });

export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const r = schema.safeParse(body ?? {});
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 10).map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`);
  throw bad(`invalid request body: ${issues.join('; ')}`);
}

export function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
      req.resume(); // discard; the connection closes after the answer
      reject(new KeygateFault('KG_ERR_BODY_TOO_LARGE', `The request body is larger than ${MAX_BODY_BYTES} bytes.`, { connection: 'close' }));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.off('data', onData);
        req.off('end', onEnd);
        req.resume();
        reject(new KeygateFault('KG_ERR_BODY_TOO_LARGE', `The request body is larger than ${MAX_BODY_BYTES} bytes.`, { connection: 'close' }));
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve(undefined);
      const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
      if (type !== 'application/json') return reject(bad('send the body as JSON with content-type: application/json'));
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(bad('the request body is not valid JSON'));
      }
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', reject);
  });
}
