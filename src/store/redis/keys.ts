// Every key keygate writes, under the configured prefix. The inventory is three hashes (one
// field per record, its JSON) beside a revision counter, an epoch and a bounded change log;
// none holds a secret (tokens are SHA-256 hashes already).
import type { KindCode } from '../inventory.js';
import type { StoreChange } from '../types.js';

export type { KindCode };

export interface InventoryKeys {
  /** Integer: the revision of the inventory; one more with every committed update. */
  readonly rev: string;
  /** Random id written with the first update: a new one means a different (flushed, replaced) inventory. */
  readonly epoch: string;
  /** Hash: account name → record JSON. */
  readonly accounts: string;
  /** Hash: token id → record JSON. */
  readonly tokens: string;
  /** Hash: binding id → record JSON. */
  readonly certs: string;
  /** Sorted set scored by revision: one JSON entry per update (actor, time, changes). */
  readonly log: string;
  /** Hash: credential id → last use (epoch ms). */
  readonly usage: string;
  /** Pub/sub channel: the new revision after each commit (a wake-up only). */
  readonly channel: string;
}

export function inventoryKeys(prefix: string): InventoryKeys {
  return {
    rev: `${prefix}inv:rev`,
    epoch: `${prefix}inv:epoch`,
    accounts: `${prefix}inv:accounts`,
    tokens: `${prefix}inv:tokens`,
    certs: `${prefix}inv:certs`,
    log: `${prefix}inv:log`,
    usage: `${prefix}usage`,
    channel: `${prefix}inv:changed`,
  };
}

/** The bucket of `key` under the policy named `policy`: a changed policy name starts a new bucket. */
export function bucketKey(prefix: string, policy: string, key: string): string {
  return `${prefix}rl:${policy}:${key}`;
}

export const KIND_CODE: Record<StoreChange['kind'], KindCode> = { account: 'a', token: 't', certificate: 'c' };
