// How many worker processes keygate.yaml asks for: `workers: N`, or `auto` for one per core
// the process may use (os.availableParallelism(), which honours CPU affinity, so a container
// pinned to two CPUs of a large host runs two workers, not one per host core).
import { availableParallelism } from 'node:os';
import { loadConfig } from '../config/load.js';
import { MAX_WORKERS, type KeygateConfig } from '../config/schema.js';

export function resolveWorkers(value: KeygateConfig['workers'], cores: () => number = availableParallelism): number {
  if (value === 'auto') return Math.max(1, Math.min(MAX_WORKERS, cores()));
  return value;
}

/**
 * The worker count of the config file, or 1 when the file does not load: the one-process path
 * then reports the problems exactly as it always has.
 */
export function configuredWorkers(configFile: string, env: NodeJS.ProcessEnv): number {
  const { loaded } = loadConfig(configFile, env);
  return loaded ? resolveWorkers(loaded.config.workers) : 1;
}
