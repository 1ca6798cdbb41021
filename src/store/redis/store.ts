// The shared credential store on Redis: one inventory for every replica. Writers commit with
// optimistic concurrency (the commit script refuses when the revision moved, and the writer
// catches up and runs its mutation again); followers catch up through the change log, woken by
// pub/sub and, when a notification is lost, by a poll of the revision.
// One module because the writer's commit and the follower's catch-up share one queue and one
// copy of the inventory: their ordering rules only read right side by side.
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisConfig } from '../../config/schema.js';
import type { Logger } from 'pino';
import { describePath } from '../../config/validate.js';
import { KeygateFault } from '../../errors/fault.js';
import type { CredentialStore, DataProblem, StoreChange, StoreData, StoreFeed, StoreFollower, StoreProblem, UsageMap } from '../types.js';
import { connect, describeRedis, disconnect, whenReady } from './client.js';
import { Wakeups } from './feed.js';
import { errorText, StoreHealth, type StoreObserver, type StoreOp } from './health.js';
import type { PreparedChange } from '../draft.js';
import { copies, type Inventory } from '../inventory.js';
import { inventoryKeys, type InventoryKeys } from './keys.js';
import { COMMIT, MERGE_USAGE, RAISE, runScript } from './scripts.js';
import { bridges, readChanges, readSnapshot, type LogEntry } from './sync.js';

export interface RedisStoreOptions {
  /** Shared with the RedisRateLimiter, so that both report one reachability. */
  health?: StoreHealth;
  /** Used when no `health` is given. */
  observer?: StoreObserver;
  logger?: Logger;
  /** Who writes when update() is given no actor, e.g. "replica:<pod name>". Default null. */
  actor?: string;
  /** Clock of the change log's times. Default Date.now. */
  now?: () => number;
  /** Pub/sub wake-ups; off, only the poll finds changes (tests of the backstop). Default true. */
  subscribe?: boolean;
}

/** Updates that touch more records than this are logged as "reload" markers, not record by record. */
const LOG_INLINE_CHANGES = 1_000;
const LOG_INLINE_BYTES = 1_000_000;
/** Attempts of one update against concurrent writers before giving up. */
const UPDATE_ATTEMPTS = 64;

/** Too many writers at once for too long: as busy as unavailable, and as worth retrying. */
export class RedisUpdateConflict extends KeygateFault {
  constructor(attempts: number) {
    super('KG_ERR_STORE_UNAVAILABLE', `the inventory kept changing under this update (${attempts} attempts); try again`, { 'retry-after': '1' });
  }
}

/**
 * Redis could not be reached or did not answer: an expected condition, not a bug — the admin API
 * answers 503 KG_ERR_STORE_UNAVAILABLE with Retry-After, the CLI one line naming the store.
 */
export class RedisUnavailable extends KeygateFault {
  constructor(description: string, cause: unknown) {
    const text = errorText(cause);
    super('KG_ERR_STORE_UNAVAILABLE', text.startsWith(description) ? text : `${description}: ${text}`, { 'retry-after': '1' });
  }
}

/** Faults (a refused operation, a conflict) pass through; anything else from Redis is unavailability. */
function asFault(description: string, err: unknown): unknown {
  return err instanceof KeygateFault ? err : new RedisUnavailable(description, err);
}

export class RedisStore implements CredentialStore {
  readonly kind = 'redis' as const;
  readonly description: string;
  readonly keys: InventoryKeys;
  readonly health: StoreHealth;
  /** Names this instance's connections in CLIENT LIST: keygate:store:<id>, keygate:sub:<id>. */
  readonly id = `${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly client: Redis;
  private readonly now: () => number;
  private inv: Inventory | undefined;
  /** Highest revision this process has seen: Redis going below it means it lost writes. */
  private seen = 0;
  private reloadNext = false;
  private serial: Promise<unknown> = Promise.resolve();
  private pending: Promise<Inventory> | undefined;
  private readonly feeds = new Set<StoreFeed>();
  private feedStatus: boolean | undefined;
  private wakeups: Wakeups | undefined;
  private everReady = false;
  private closed = false;
  /**
   * What the last update() cost: attempts, changes committed, records serialized or compared by
   * the draft, record copies made (by anything) while it ran. For tests and benchmarks.
   */
  lastUpdate: { attempts: number; changes: number; materialized: number; compared: number; copied: number } | undefined;

  constructor(
    private readonly config: RedisConfig,
    private readonly opts: RedisStoreOptions = {},
  ) {
    this.description = describeRedis(config);
    this.keys = inventoryKeys(config.prefix);
    this.health = opts.health ?? new StoreHealth(this.description, opts.observer, opts.logger);
    this.now = opts.now ?? Date.now;
    this.client = connect(config, 'store', `keygate:store:${this.id}`);
    this.client.on('ready', () => {
      if (this.everReady) void this.syncSoon();
      this.everReady = true;
    });
    this.client.on('close', () => {
      if (!this.everReady || this.closed) return;
      // Whatever happened while we were away (a restart that lost writes, a flush), the log
      // cannot be trusted to tell: the next sync reads everything.
      this.reloadNext = true;
      this.setStatus(false, 'connection lost');
    });
  }

  async read(): Promise<StoreData> {
    return (await this.current('read')).copy();
  }

  async load(check?: (data: StoreData) => readonly DataProblem[]): Promise<{ data?: StoreData; problems: StoreProblem[] }> {
    const { data, problems } = await this.readSource();
    if (problems.length) return { problems };
    const found = check?.(data) ?? [];
    return found.length ? { problems: this.locate(found) } : { data, problems: [] };
  }

  /** Redis has no lines: a problem names the store and the record's place in the inventory. */
  locate(problems: readonly DataProblem[]): StoreProblem[] {
    return problems.map((p) => ({ file: this.description, line: 1, col: 1, message: `${describePath(p.path)}: ${p.message}` }));
  }

  /** The data and the records that were left out because they do not validate (`keygate check`). */
  async readSource(): Promise<{ data: StoreData; problems: StoreProblem[] }> {
    const inv = await this.current('read');
    return { data: inv.copy(), problems: [...inv.problems.values()] };
  }

  /**
   * Read-modify-write against this process's copy at its revision: the copy is brought up to
   * date from the change log (one round trip when nothing is new), the mutation runs on a
   * copy-on-write draft of it (store/draft.ts), and only the changed records go to the commit script,
   * which refuses if the revision moved meanwhile; then the mutation runs again on the newer
   * data. The cost is that of the change, not of the inventory: no copy, no full comparison.
   */
  async update<T>(mutate: (data: StoreData) => T, meta?: { actor?: string }): Promise<T> {
    const actor = meta?.actor ?? this.opts.actor ?? null;
    const copiesBefore = copies.count;
    const cost = { attempts: 0, changes: 0, materialized: 0, compared: 0, copied: 0 };
    const done = () => (this.lastUpdate = { ...cost, copied: copies.count - copiesBefore });
    for (let attempt = 1; attempt <= UPDATE_ATTEMPTS; attempt++) {
      const inv = await this.current('update');
      const revision = inv.revision;
      const epoch = inv.epoch;
      const draft = inv.draft();
      cost.attempts = attempt;
      let result: T;
      let changes: PreparedChange[];
      try {
        result = mutate(draft.data);
        changes = draft.changes();
      } finally {
        cost.materialized += draft.cost.materialized;
        cost.compared += draft.cost.compared;
      }
      cost.changes = changes.length;
      if (changes.length === 0) {
        done();
        return result;
      }
      const landed = await this.commit(revision, epoch, changes, actor);
      if (landed !== undefined) {
        await this.afterCommit(landed.revision, landed.epoch, changes.map((c) => c.change));
        done();
        return result;
      }
      // Someone else committed first: wait a little (so that twenty writers do not collide in
      // lockstep again), catch up, and run the mutation on the newer data.
      await new Promise((r) => setTimeout(r, randomInt(1, Math.min(200, 5 * 2 ** Math.min(attempt, 6)) + 1)));
    }
    throw new RedisUpdateConflict(UPDATE_ATTEMPTS);
  }

  follow(feed: StoreFeed): StoreFollower {
    if (this.closed) throw new Error('follow: the store is closed');
    void this.enqueue(async () => {
      if (this.closed) return;
      this.feeds.add(feed);
      const before = this.feedStatus;
      // At start-up, give the first connection its connect timeout before calling Redis down.
      if (!this.everReady) await whenReady(this.client, this.config.connectTimeout, this.description).catch(() => undefined);
      if (this.inv && !this.reloadNext) deliver(feed, 'onSnapshot', this.inv.view(), this.inv.revision);
      else await this.syncLocked('sync').catch(() => undefined);
      // A transition during this sync was told to every feed, this one included.
      if (this.feedStatus === before && before !== undefined) feed.onStatus?.(before, before ? undefined : 'unreachable');
    });
    if (!this.wakeups) {
      this.wakeups = new Wakeups(this.config, this.keys.channel, this.opts.subscribe !== false ? `keygate:sub:${this.id}` : undefined, () => void this.syncSoon());
    }
    return {
      // A sync of its own (not coalesced with a wake-up already queued): it must see every
      // write that completed before it was asked for.
      sync: () => (this.closed ? Promise.resolve() : this.enqueue(() => this.syncLocked('sync')).then(() => undefined, () => undefined)),
      stop: () => {
        this.feeds.delete(feed);
        void this.enqueue(async () => {
          this.feeds.delete(feed);
          if (this.feeds.size === 0 && this.wakeups) {
            const w = this.wakeups;
            this.wakeups = undefined;
            await w.close();
          }
        });
      },
    };
  }

  async readUsage(): Promise<UsageMap> {
    return this.call('usage', async () => {
      const all = await this.client.hgetall(this.keys.usage);
      const out: UsageMap = {};
      for (const [id, t] of Object.entries(all)) {
        const n = Number(t);
        if (Number.isFinite(n)) out[id] = n;
      }
      return out;
    });
  }

  async writeUsage(usage: UsageMap): Promise<void> {
    const pairs = Object.entries(usage).filter(([, t]) => Number.isFinite(t));
    if (pairs.length === 0) return;
    await this.call('usage', async () => {
      // Pages of 500, so that one flush of a busy replica never becomes one huge script call.
      for (let i = 0; i < pairs.length; i += 500) {
        const args = pairs.slice(i, i + 500).flatMap(([id, t]) => [id, String(Math.trunc(t))]);
        await runScript(this.client, MERGE_USAGE, [this.keys.usage], args);
      }
    });
  }

  /** Change-log entries after `from` (who changed what, when), at most `limit`: for audit and debugging. */
  async readLog(from: number, limit = 100): Promise<Array<{ revision: number; actor: string | null; at: string; changes: number }>> {
    return this.call('read', async () => {
      const texts = await this.client.zrangebyscore(this.keys.log, `(${from}`, '+inf', 'LIMIT', 0, Math.max(1, Math.min(limit, 1000)));
      return texts.map((t) => JSON.parse(t) as LogEntry).map((e) => ({ revision: e.rev, actor: e.actor, at: e.at, changes: e.changes?.length ?? e.count ?? 0 }));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.feeds.clear();
    const w = this.wakeups;
    this.wakeups = undefined;
    await w?.close();
    await this.serial.catch(() => undefined);
    await disconnect(this.client);
  }

  // ---- internals ------------------------------------------------------------------------------

  /** The inventory brought up to date with Redis (waits for a first connection, bounded). */
  private async current(op: StoreOp): Promise<Inventory> {
    if (this.closed) throw new Error(`${this.description}: the store is closed`);
    if (this.client.status !== 'ready') {
      await whenReady(this.client, this.config.connectTimeout, this.description).catch((err: unknown) => {
        this.health.failed(op, err);
        throw asFault(this.description, err);
      });
    }
    return this.enqueue(() => this.syncLocked(op)).catch((err: unknown) => {
      throw asFault(this.description, err);
    });
  }

  /** A sync for a wake-up: coalesced, so that a burst of notifications costs one catch-up. */
  private syncSoon(): Promise<Inventory | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    if (!this.pending) {
      this.pending = this.enqueue(() => {
        this.pending = undefined;
        return this.syncLocked('sync');
      });
    }
    return this.pending.catch(() => undefined);
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.serial.then(task, task);
    this.serial = run.catch(() => undefined);
    return run;
  }

  /** Runs inside the queue: one sync at a time, so the copy moves from revision to revision in order. */
  private async syncLocked(op: StoreOp): Promise<Inventory> {
    try {
      const inv = await this.catchUp();
      this.health.ok();
      this.setStatus(true);
      return inv;
    } catch (err) {
      this.health.failed(op, err);
      this.setStatus(false, errorText(err));
      throw err;
    }
  }

  private async catchUp(): Promise<Inventory> {
    if (!this.inv || this.reloadNext) return this.reload();
    const inv = this.inv;
    for (let pages = 0; pages < 10_000; pages++) {
      const page = await readChanges(this.client, this.keys, inv.revision);
      // An inventory nobody had written yet gets its epoch with the first write.
      if (inv.epoch === '' && inv.revision === 0) inv.epoch = page.epoch;
      if (page.epoch !== inv.epoch || !bridges(inv.revision, page)) return this.reload();
      if (page.entries.length === 0) return inv;
      const changes: StoreChange[] = [];
      const rejected: StoreProblem[] = [];
      for (const e of page.entries) changes.push(...inv.applyRaw(e.changes!, rejected));
      inv.revision = page.entries[page.entries.length - 1]!.rev;
      this.seen = Math.max(this.seen, inv.revision);
      if (rejected.length > 0) this.emitProblems(rejected);
      this.emitChanges(changes, inv.revision);
      if (inv.revision >= page.revision) return inv;
    }
    return this.reload();
  }

  private async reload(): Promise<Inventory> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const inv = await readSnapshot(this.client, this.keys, this.description);
      if (inv.revision < this.seen) {
        this.opts.logger?.warn({ store: this.description, revision: inv.revision, seen: this.seen }, 'Redis holds an older revision than this replica had seen: acknowledged writes were lost (check persistence); reloading');
        await runScript(this.client, RAISE, [this.keys.rev, this.keys.channel], [this.seen]);
        continue;
      }
      this.inv = inv;
      this.seen = inv.revision;
      this.reloadNext = false;
      if (inv.problems.size > 0) this.emitProblems([...inv.problems.values()]);
      for (const feed of this.feeds) deliver(feed, 'onSnapshot', inv.view(), inv.revision);
      return inv;
    }
    throw new Error(`${this.description}: the revision kept going back while reloading`);
  }

  /**
   * Sends one commit; undefined when another writer was first. A commit whose reply was lost
   * (timeout, dropped connection) is asked again with the same id: the script answers that it
   * landed, or refuses it, and never applies it twice.
   */
  private async commit(revision: number, epoch: string, changes: readonly PreparedChange[], actor: string | null): Promise<{ revision: number; epoch: string } | undefined> {
    const newEpoch = epoch || randomUUID();
    const id = randomUUID();
    const args: string[] = [];
    // The log entry is spliced from the JSON the records are written as: each serialized once.
    // Too many or too large to log, it says how many, and readers reload.
    const logged: string[] = [];
    let inline = changes.length <= LOG_INLINE_CHANGES;
    let bytes = 0;
    for (const c of changes) {
      args.push(c.code, c.key, c.json ?? '');
      if (!inline) continue;
      const item = `[${JSON.stringify(c.code)},${JSON.stringify(c.key)},${c.json ?? 'null'}]`;
      bytes += item.length + 1;
      if (bytes > LOG_INLINE_BYTES) inline = false;
      else logged.push(item);
    }
    const head = JSON.stringify({ rev: '@REV@', commit: id, actor, at: new Date(this.now()).toISOString() }).slice(0, -1);
    const entry = inline ? `${head},"changes":[${logged.join(',')}]}` : `${head},"count":${changes.length}}`;
    const keys = [this.keys.rev, this.keys.epoch, this.keys.accounts, this.keys.tokens, this.keys.certs, this.keys.log, this.keys.usage, this.keys.channel];
    const argv = [String(revision), epoch, newEpoch, id, entry, String(this.config.changeLog), ...args];
    for (let tries = 1; ; tries++) {
      try {
        const [status, rev] = (await runScript(this.client, COMMIT, keys, argv)) as [number, number];
        return status === 0 ? undefined : { revision: Number(rev), epoch: newEpoch };
      } catch (err) {
        this.health.failed('update', err);
        if (tries >= 3 || this.closed) throw asFault(this.description, err);
        await whenReady(this.client, this.config.connectTimeout, this.description).catch((e: unknown) => {
          throw asFault(this.description, e);
        });
      }
    }
  }

  private afterCommit(revision: number, epoch: string, changes: StoreChange[]): Promise<unknown> {
    return this.enqueue(async () => {
      const inv = this.inv;
      if (inv && !this.reloadNext && inv.revision === revision - 1 && (inv.epoch === epoch || inv.epoch === '')) {
        inv.applyOwn(changes);
        inv.revision = revision;
        inv.epoch = epoch;
        this.seen = Math.max(this.seen, revision);
        this.emitChanges(changes, revision);
        return;
      }
      if (inv && inv.revision >= revision && inv.epoch === epoch) return;
      await this.syncLocked('sync').catch(() => undefined);
    });
  }

  /** The changes and their records are frozen: every feed can be given the same ones. */
  private emitChanges(changes: readonly StoreChange[], revision: number): void {
    if (changes.length === 0) return;
    for (const feed of this.feeds) deliver(feed, 'onChanges', changes, revision);
  }

  private emitProblems(list: readonly StoreProblem[]): void {
    this.opts.logger?.warn({ store: this.description, problems: list.slice(0, 20) }, 'records in Redis that do not validate were left out');
    for (const feed of this.feeds) feed.onRejected?.(list);
  }

  private setStatus(up: boolean, detail?: string): void {
    if (this.feedStatus === up) return;
    this.feedStatus = up;
    for (const feed of this.feeds) {
      try {
        feed.onStatus?.(up, detail);
      } catch (err) {
        this.opts.logger?.error({ err: errorText(err) }, 'store feed failed');
      }
    }
  }

  private async call<T>(op: StoreOp, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new Error(`${this.description}: the store is closed`);
    try {
      if (this.client.status !== 'ready') await whenReady(this.client, this.config.connectTimeout, this.description);
      const out = await fn();
      this.health.ok();
      return out;
    } catch (err) {
      this.health.failed(op, err);
      throw asFault(this.description, err);
    }
  }
}

function deliver<K extends 'onSnapshot' | 'onChanges'>(feed: StoreFeed, what: K, ...args: Parameters<StoreFeed[K]>): void {
  try {
    (feed[what] as (...a: Parameters<StoreFeed[K]>) => void)(...args);
  } catch {
    // A consumer that throws must not stop the store from following; it sees the next change.
  }
}
