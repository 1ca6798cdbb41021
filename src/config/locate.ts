// Which keygate.yaml a command uses: the one named with -c, else the one KEYGATE_CONFIG names,
// else ./config/keygate.yaml when it exists (a checkout, or a folder laid out like one), else
// /etc/keygate/keygate.yaml (where the container image expects it). A file named explicitly
// must exist: falling through to another config would run the command against the wrong
// inventory and look like success.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { KeygateFault } from '../errors/fault.js';

export const CHECKOUT_CONFIG = 'config/keygate.yaml';
export const IMAGE_CONFIG = '/etc/keygate/keygate.yaml';
export const CONFIG_ENV = 'KEYGATE_CONFIG';

export type ConfigSource = 'flag' | 'env' | 'checkout' | 'image';

export interface LocatedConfig {
  /** Absolute path of the file. */
  file: string;
  source: ConfigSource;
}

/** What each source is called in messages. */
export const SOURCE_NAMES: Record<ConfigSource, string> = {
  flag: 'given with -c',
  env: `named by ${CONFIG_ENV}`,
  checkout: `./${CHECKOUT_CONFIG}`,
  image: 'the image default',
};

export interface LocateOptions {
  /** The -c value, if any. */
  flag?: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Injected by tests; the file system otherwise. */
  exists?: (file: string) => boolean;
  /** Injected by tests; IMAGE_CONFIG otherwise. */
  imageConfig?: string;
}

/** The config file a command uses; a KG_ERR_NOT_FOUND fault naming every place looked at when there is none. */
export function locateConfig(opts: LocateOptions): LocatedConfig {
  const exists = opts.exists ?? existsSync;
  const named = (file: string, source: ConfigSource): LocatedConfig => {
    const abs = resolve(opts.cwd, file);
    if (!exists(abs)) throw new KeygateFault('KG_ERR_NOT_FOUND', `config ${abs}: no such file (${SOURCE_NAMES[source]})`);
    return { file: abs, source };
  };
  if (opts.flag !== undefined && opts.flag !== '') return named(opts.flag, 'flag');
  const fromEnv = opts.env[CONFIG_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return named(fromEnv, 'env');
  const checkout = resolve(opts.cwd, CHECKOUT_CONFIG);
  if (exists(checkout)) return { file: checkout, source: 'checkout' };
  const image = opts.imageConfig ?? IMAGE_CONFIG;
  if (exists(image)) return { file: image, source: 'image' };
  throw new KeygateFault('KG_ERR_NOT_FOUND', `no config file: not given with -c, ${CONFIG_ENV} is not set, and neither ${checkout} nor ${image} exists`);
}
