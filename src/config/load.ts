// Loading keygate.yaml: read with positions, substitute ${ENV}, validate strictly, resolve
// relative paths against the file's folder. Nothing here opens a socket.
import { dirname, isAbsolute, resolve } from 'node:path';
import { configSchema, type KeygateConfig } from './schema.js';
import { readYamlFile, SourceError, type Problem, type YamlSource } from './source.js';
import { validateSource } from './validate.js';

export interface LoadedConfig {
  config: KeygateConfig;
  /** The file it came from, absolute. */
  file: string;
  source: YamlSource;
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): { loaded?: LoadedConfig; problems: Problem[] } {
  const abs = resolve(file);
  const source = readYamlFile(abs, { env });
  const { value, problems } = validateSource(source, configSchema);
  if (!value || problems.length > 0) return { problems };
  return { loaded: { config: resolvePaths(value, dirname(abs)), file: abs, source }, problems: [] };
}

/** loadConfig, throwing a SourceError with every problem. */
export function loadConfigOrThrow(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const { loaded, problems } = loadConfig(file, env);
  if (!loaded) throw new SourceError(problems);
  return loaded;
}

function resolvePaths(cfg: KeygateConfig, base: string): KeygateConfig {
  const p = (f: string) => (isAbsolute(f) ? f : resolve(base, f));
  const ca = cfg.listen.clientAuth;
  return {
    ...cfg,
    listen: {
      ...cfg.listen,
      tls: { ...cfg.listen.tls, cert: p(cfg.listen.tls.cert), key: p(cfg.listen.tls.key) },
      clientAuth: { ...ca, ca: ca.ca?.map(p) ?? null, caKey: ca.caKey ? p(ca.caKey) : null, crl: ca.crl?.map(p) ?? null },
    },
    admin: { ...cfg.admin, tls: cfg.admin.tls ? { cert: p(cfg.admin.tls.cert), key: p(cfg.admin.tls.key) } : null },
    store: { ...cfg.store, file: p(cfg.store.file), redis: cfg.store.redis && { ...cfg.store.redis, tls: resolveRedisTls(cfg.store.redis.tls, p) } },
    audit: { ...cfg.audit, output: cfg.audit.output === 'stdout' || cfg.audit.output === 'stderr' ? cfg.audit.output : p(cfg.audit.output) },
  };
}

type RedisTls = NonNullable<NonNullable<KeygateConfig['store']['redis']>['tls']>;

function resolveRedisTls(tls: RedisTls | null, p: (f: string) => string): RedisTls | null {
  if (!tls) return null;
  const opt = (f: string | null) => (f === null ? null : p(f));
  return { ...tls, ca: opt(tls.ca), cert: opt(tls.cert), key: opt(tls.key) };
}
