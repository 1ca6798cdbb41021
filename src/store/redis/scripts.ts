// The server-side scripts. Each runs atomically in Redis: nothing else executes between its
// reads and its writes, so what they check still holds when they write. Sent by SHA (EVALSHA)
// and loaded on the first NOSCRIPT, as after a Redis restart.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface Script {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
}

function script(name: string, lua: string): Script {
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** EVALSHA, then EVAL when the server does not know the script (first use, restart, SCRIPT FLUSH). */
export async function runScript(client: Redis, s: Script, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
  // One array, not spread arguments: an import of 100,000 records is 300,000 arguments, more
  // than a call stack holds.
  const flat = (keys as ReadonlyArray<string | number>).concat(args).map(String);
  try {
    return await client.evalsha(s.sha, keys.length, flat);
  } catch (err) {
    if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
    return client.eval(s.lua, keys.length, flat);
  }
}

/**
 * Commits one update. KEYS: rev, epoch, accounts, tokens, certs, log, usage, channel.
 * ARGV: expected revision, expected epoch ('' = none yet), epoch to create if none, commit id,
 * log entry (JSON with "@REV@" where the new revision goes), log size, then triples of
 * kind (a|t|c), key, record JSON ('' = delete).
 *
 * Refuses (0, rev) when the revision or epoch moved since the writer read: the writer catches up
 * and runs its mutation again. Answers (2, rev) when this very commit already landed (its reply
 * was lost and the writer asks again), so a retried commit never applies twice.
 */
export const COMMIT = script(
  'commit',
  `
local rev = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = redis.call('GET', KEYS[2]) or ''
local expected = tonumber(ARGV[1])
if rev ~= expected or epoch ~= ARGV[2] then
  if rev > expected and (epoch == ARGV[2] or epoch == ARGV[3]) then
    local entry = redis.call('ZRANGEBYSCORE', KEYS[6], expected + 1, expected + 1)[1]
    if entry and string.find(entry, '"commit":"' .. ARGV[4] .. '"', 1, true) then return {2, expected + 1} end
  end
  return {0, rev}
end
if epoch == '' then redis.call('SET', KEYS[2], ARGV[3]) end
local hashes = { a = KEYS[3], t = KEYS[4], c = KEYS[5] }
for i = 7, #ARGV, 3 do
  local h = hashes[ARGV[i]]
  if ARGV[i + 2] == '' then
    redis.call('HDEL', h, ARGV[i + 1])
    if ARGV[i] ~= 'a' then redis.call('HDEL', KEYS[7], ARGV[i + 1]) end
  else
    redis.call('HSET', h, ARGV[i + 1], ARGV[i + 2])
  end
end
local new = rev + 1
redis.call('SET', KEYS[1], new)
local entry = string.gsub(ARGV[5], '"@REV@"', tostring(new), 1)
redis.call('ZADD', KEYS[6], new, entry)
redis.call('ZREMRANGEBYRANK', KEYS[6], 0, -(tonumber(ARGV[6]) + 1))
redis.call('PUBLISH', KEYS[8], new)
return {1, new}
`,
);

/**
 * Where the inventory stands, and the log entries after a revision. KEYS: rev, epoch, log.
 * ARGV: from, most entries to return. Returns {rev, epoch, {entries…}}.
 */
export const CHANGES = script(
  'changes',
  `
local rev = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = redis.call('GET', KEYS[2]) or ''
local from = tonumber(ARGV[1])
if rev <= from then return {rev, epoch, {}} end
return {rev, epoch, redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. from, rev, 'LIMIT', 0, tonumber(ARGV[2]))}
`,
);

/**
 * Raises the revision above one a replica has already seen: Redis came back with less than it
 * had acknowledged (a lost AOF tail, a flush, a failover to a replica that lagged). No log entry
 * exists for the raised revision, so every replica's catch-up finds a gap and reloads, and no
 * later change reuses a revision number some replica holds for another one. KEYS: rev, channel.
 */
export const RAISE = script(
  'raise',
  `
local rev = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if rev < floor then
  rev = floor + 1
  redis.call('SET', KEYS[1], rev)
  redis.call('PUBLISH', KEYS[2], rev)
end
return rev
`,
);

/** Merges last-use times, keeping the later of each. KEYS: usage. ARGV: id, epoch ms pairs. */
export const MERGE_USAGE = script(
  'merge-usage',
  `
for i = 1, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
`,
);

/**
 * One token bucket, on Redis's clock. KEYS: the bucket. ARGV: tokens per ms, burst, 1 to take
 * (0 to look only). Returns {allowed 0|1, tokens after, now ms} with numbers as strings, since
 * Redis would truncate a Lua float to an integer. The arithmetic is that of takeToken()
 * (ratelimit/token-bucket.ts), including its tolerance and its never-moving-back mark.
 */
export const TAKE = script(
  'take',
  `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local s = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(s[1])
local mark = tonumber(s[2])
if tokens == nil or mark == nil then tokens = burst; mark = now end
local elapsed = now - mark
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
if now > mark then mark = now end
local allowed = tokens >= 1 - 1e-9
if ARGV[3] == '1' then
  if allowed then tokens = math.max(0, tokens - 1) end
  redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'u', string.format('%.17g', mark))
  -- A bucket that would be full again is the same as no bucket: let it go.
  redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1000)
end
return {allowed and 1 or 0, string.format('%.17g', tokens), string.format('%.17g', now)}
`,
);
