// Everything keygate builds from its files, in one place: config, credential data, TLS
// material, compiled runtime. Used by the proxy at start and on reload, and by `keygate
// check` / `explain`, which build everything and open no socket. Every problem comes back
// positioned as file:line:col.
import { loadConfig, type LoadedConfig } from './config/load.js';
import type { KeygateConfig } from './config/schema.js';
import type { Problem } from './config/source.js';
import { UpstreamPools } from './forward/upstream.js';
import { loadTlsMaterial, TlsMaterialError, type TlsMaterial } from './listener/tls-material.js';
import { compileConfig, indexCredentials, type CompiledConfig, type Runtime } from './pipeline/runtime.js';
import { FileStore, type StoreSource } from './store/file-store.js';
import type { CredentialStore, StoreData } from './store/types.js';

export interface Built {
  loaded: LoadedConfig;
  compiled: CompiledConfig;
  runtime: Runtime;
  material: TlsMaterial;
  data: StoreData;
}

export function createStore(config: KeygateConfig): FileStore {
  return new FileStore(config.store.file);
}

/** Problems of settings keygate accepts in the schema but cannot run in this build. */
function unsupported(loaded: LoadedConfig): Problem[] {
  const out: Problem[] = [];
  if (loaded.config.store.redis) out.push(loaded.source.problemAt(['store', 'redis'], 'store.redis: the Redis store is not available in this version of keygate; use store.file'));
  return out;
}

export function compileLoaded(loaded: LoadedConfig, pools: UpstreamPools): { compiled?: CompiledConfig; problems: Problem[] } {
  const problems = unsupported(loaded);
  const { compiled, problems: cp } = compileConfig(loaded.config, pools);
  problems.push(...cp.map((p) => loaded.source.problemAt(p.path, p.message)));
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

export async function indexStore(compiled: CompiledConfig, store: CredentialStore): Promise<{ runtime?: Runtime; data?: StoreData; problems: Problem[] }> {
  const src: StoreSource = store instanceof FileStore ? await store.readSource() : { data: await store.read(), problems: [] };
  if (!src.data) return { problems: src.problems };
  const { runtime, problems } = indexCredentials(compiled, src.data);
  const file = store instanceof FileStore ? store.file : store.description;
  return runtime
    ? { runtime, data: src.data, problems: [] }
    : { problems: problems.map((p) => (src.source ? src.source.problemAt(p.path, p.message) : { file, line: 1, col: 1, message: p.message })) };
}

/** Builds everything from the config file; `problems` is empty exactly when `built` is set. */
export async function buildAll(configFile: string, pools: UpstreamPools, env: NodeJS.ProcessEnv = process.env): Promise<{ built?: Built; store?: FileStore; problems: Problem[] }> {
  const { loaded, problems } = loadConfig(configFile, env);
  if (!loaded) return { problems };
  const { compiled, problems: compileProblems } = compileLoaded(loaded, pools);
  const { material, problems: tlsProblems } = loadMaterial(loaded);
  const all = [...compileProblems, ...tlsProblems];
  const store = createStore(loaded.config);
  if (!compiled) {
    // The cross-checks need compiled scopes, but the credential file's own shape can still be
    // checked, so that one `keygate check` run reports as much as it can.
    all.push(...(await store.readSource()).problems);
    return { store, problems: all };
  }
  const { runtime, data, problems: storeProblems } = await indexStore(compiled, store);
  all.push(...storeProblems);
  if (all.length || !runtime || !material || !data) return { store, problems: all };
  return { built: { loaded, compiled, runtime, material, data }, store, problems: [] };
}
