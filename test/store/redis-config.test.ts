// store.redis as the schema reads it: TLS only with rediss://, cert and key together, a URL
// with a host; credentials from the URL or from the config (which wins), never in the name.
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { describeRedis, parseRedisUrl } from '../../src/store/redis/client.js';

const parse = (redis: Record<string, unknown>) =>
  configSchema.safeParse({ listen: { tls: { cert: 'x.crt', key: 'x.key' } }, routes: [{ pathPrefix: '/', upstream: 'http://127.0.0.1:1' }], store: { redis } });
const messages = (r: ReturnType<typeof parse>) => (r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));

describe('store.redis', () => {
  it('fills in the defaults', () => {
    const r = parse({ url: 'redis://10.0.0.5:6380/2' });
    expect(r.success && r.data.store.redis).toEqual({ url: 'redis://10.0.0.5:6380/2', username: null, password: null, tls: null, prefix: 'keygate:', failMode: 'closed', connectTimeout: 2_000, commandTimeout: 1_000, limitTimeout: 100, pollInterval: 250, changeLog: 10_000 });
  });

  it('refuses TLS options with redis://, a cert without its key, a URL without a host or with a path', () => {
    expect(messages(parse({ url: 'redis://h', tls: { ca: 'ca.pem' } }))).toEqual(['store.redis.tls: store.redis.tls needs a rediss:// url']);
    expect(parse({ url: 'rediss://h', tls: { ca: 'ca.pem' } }).success).toBe(true);
    expect(messages(parse({ url: 'rediss://h', tls: { cert: 'c.pem' } }))[0]).toContain('cert and key go together');
    expect(messages(parse({ url: 'redis://' }))[0]).toContain('redis url must look like');
    expect(messages(parse({ url: 'redis://h/db/x' }))[0]).toContain('redis url must look like');
    expect(messages(parse({ url: 'http://h' }))[0]).toContain('must start with redis://');
    expect(messages(parse({ url: 'redis://h', pollInterval: '0s' }))[0]).toContain('longer than 0');
  });

  it('takes user and password from the URL (decoded), the config\'s overriding them; the name shows neither', () => {
    expect(parseRedisUrl({ url: 'rediss://app%40x:p%3Ass@[::1]:7000/3', username: null, password: null })).toEqual({ host: '::1', port: 7000, db: 3, tls: true, username: 'app@x', password: 'p:ss' });
    expect(parseRedisUrl({ url: 'redis://u:p@h', username: 'other', password: 'secret' })).toMatchObject({ host: 'h', port: 6379, db: 0, tls: false, username: 'other', password: 'secret' });
    expect(parseRedisUrl({ url: 'redis://h', username: null, password: null })).toEqual({ host: 'h', port: 6379, db: 0, tls: false });
    expect(describeRedis({ url: 'rediss://app:hunter2@[::1]:7000/3' })).toBe('redis tls [::1]:7000/3');
  });
});
