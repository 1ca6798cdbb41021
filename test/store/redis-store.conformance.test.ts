// The store contract against Redis (the shared server, a key prefix of this test's own).
import { RedisStore } from '../../src/store/redis/store.js';
import { describeCredentialStore } from './conformance.js';
import { deletePrefix, redisConfig, testPrefix } from './redis-support.js';

describeCredentialStore('redis', async () => {
  const prefix = testPrefix();
  const config = redisConfig({ prefix });
  return { open: () => new RedisStore(config), cleanup: () => deletePrefix(prefix) };
});
