// Everything keygate builds from its files, in one place: config, TLS material, compiled config
// and the credential index. Used by the proxy at start and on reload, and by `keygate check` /
// `explain`, which open no socket (check builds no index: it reports on the data). Every
// problem comes back positioned as file:line:col.
import { loadConfig, type LoadedConfig } from '../config/load.js';
import type { Problem } from '../config/source.js';
import type { UpstreamPools } from '../forward/upstream-pools.js';
import { loadTlsMaterial, TlsMaterialError, type TlsMaterial } from '../listener/tls-material.js';
import { openTlsSources, type TlsSources } from '../listener/tls-sources.js';
import type { KeygateConfig } from '../config/schema.js';
import { checkStoreData } from '../store/check.js';
import { createStore } from '../store/factory.js';
import type { CredentialStore, StoreData } from '../store/types.js';
import { compileConfig, type CompiledConfig } from './compile.js';
import { LiveIndex } from './credential-index.js';

/** What `keygate check` reports on. No credential index: indexing finds no problem the store check did not (at 100,000 credentials it was a third of the command's time). */
export interface Built {
  loaded: LoadedConfig;
  compiled: CompiledConfig;
  material: TlsMaterial;
  data: StoreData;
}

export function compileLoaded(loaded: LoadedConfig, pools: UpstreamPools): { compiled?: CompiledConfig; problems: Problem[] } {
  const { compiled, problems: cp } = compileConfig(loaded.config, pools);
  const problems = cp.map((p) => loaded.source.problemAt(p.path, p.message));
  return problems.length ? { problems } : { compiled, problems };
}

export function loadMaterial(loaded: LoadedConfig): { material?: TlsMaterial; problems: Problem[] } {
  try {
    return { material: loadTlsMaterial(loaded.config), problems: [] };
  } catch (err) {
    if (err instanceof TlsMaterialError) return { problems: [loaded.source.problemAt(err.path, err.message)] };
    throw err;
  }
}

/** A store that cannot be read at all (Redis unreachable, a file keygate may not read) is one more problem. */
async function loadStore(store: CredentialStore, check?: (d: StoreData) => ReturnType<typeof checkStoreData>): Promise<{ data?: StoreData; problems: Problem[] }> {
  try {
    return await store.load(check);
  } catch (err) {
    return { problems: [{ file: store.description, line: 1, col: 1, message: `cannot read the credential store: ${(err as Error)?.message ?? String(err)}` }] };
  }
}

/** The store's data, checked against the compiled config. */
async function checkedStore(compiled: CompiledConfig, store: CredentialStore): Promise<{ data?: StoreData; problems: Problem[] }> {
  return loadStore(store, (d) => checkStoreData(d, compiled.config));
}

/** The store's data, checked against the compiled config and indexed. */
export async function indexStore(compiled: CompiledConfig, store: CredentialStore): Promise<{ index?: LiveIndex; data?: StoreData; problems: Problem[] }> {
  const { data, problems } = await checkedStore(compiled, store);
  if (!data) return { problems };
  return { index: LiveIndex.build(compiled, data), data, problems: [] };
}

/** Builds and checks everything from the config file but the credential index; `problems` is empty exactly when `built` is set. */
export async function buildAll(configFile: string, pools: UpstreamPools, env: NodeJS.ProcessEnv = process.env): Promise<{ built?: Built; store?: CredentialStore; problems: Problem[] }> {
  const { loaded, problems } = loadConfig(configFile, env);
  if (!loaded) return { problems };
  const { compiled, problems: compileProblems } = compileLoaded(loaded, pools);
  const { material, problems: tlsProblems } = loadMaterial(loaded);
  const all = [...compileProblems, ...tlsProblems];
  const store = createStore(loaded.config);
  if (!compiled) {
    // The cross-checks need compiled scopes, but the credential file's own shape can still be
    // checked, so that one `keygate check` run reports as much as it can.
    all.push(...(await loadStore(store)).problems);
    return { store, problems: all };
  }
  const { data, problems: storeProblems } = await checkedStore(compiled, store);
  all.push(...storeProblems);
  if (all.length || !material || !data) return { store, problems: all };
  return { built: { loaded, compiled, material, data }, store, problems: [] };
}

/** What makes a config unusable before anything is swapped: its own problems, TLS files, the inventory against it. */
export function prepareConfig(loaded: LoadedConfig, pools: UpstreamPools, onComposeError: (source: string, e: unknown) => void): { compiled?: CompiledConfig; tls?: TlsSources; problems: Problem[] } {
  const { compiled, problems } = compileLoaded(loaded, pools);
  let tls: TlsSources | undefined;
  try {
    tls = openTlsSources(loaded.config, onComposeError);
  } catch (err) {
    if (!(err instanceof TlsMaterialError)) throw err;
    problems.push(loaded.source.problemAt(err.path, err.message));
  }
  return problems.length || !compiled || !tls ? { problems } : { compiled, tls, problems };
}

/**
 * Settings of a new config that wait for a restart: sockets and server options are made once,
 * and the operator is told so rather than left to wonder why nothing changed.
 */
export function restartOnlyChanges(prev: KeygateConfig, cfg: KeygateConfig): string[] {
  return [
    cfg.listen.port !== prev.listen.port || cfg.listen.host !== prev.listen.host ? 'listen.host/port' : '',
    cfg.listen.clientAuth.port !== prev.listen.clientAuth.port ? 'listen.clientAuth.port' : '',
    JSON.stringify(cfg.listen.limits) !== JSON.stringify(prev.listen.limits) ? 'listen.limits' : '',
    JSON.stringify(cfg.listen.http2) !== JSON.stringify(prev.listen.http2) ? 'listen.http2' : '',
    JSON.stringify(cfg.admin) !== JSON.stringify(prev.admin) ? 'admin' : '',
    cfg.audit.output !== prev.audit.output ? 'audit.output' : '',
    cfg.store.file !== prev.store.file ? 'store.file' : '',
    JSON.stringify(cfg.store.redis) !== JSON.stringify(prev.store.redis) ? 'store.redis' : '',
    cfg.workers !== prev.workers ? 'workers' : '',
  ].filter(Boolean);
}
