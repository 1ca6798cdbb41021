// config/locate.ts: the order in which a command looks for keygate.yaml, each source with the
// one before it absent, and the errors naming what was looked at. The file system is injected
// so that the image's /etc/keygate/keygate.yaml can be taken as present (test/cli runs the
// binary for the other sources).
import { describe, expect, it } from 'vitest';
import { locateConfig, type LocateOptions } from '../../src/config/locate.js';
import { KeygateFault } from '../../src/errors/fault.js';

const fs = (...present: string[]) => (file: string) => present.includes(file);
const base = (over: Partial<LocateOptions>): LocateOptions => ({ env: {}, cwd: '/work/app', imageConfig: '/etc/keygate/keygate.yaml', ...over });

function fault(fn: () => unknown): KeygateFault {
  try {
    fn();
  } catch (err) {
    if (err instanceof KeygateFault) return err;
    throw err;
  }
  throw new Error('did not throw');
}

describe('locateConfig', () => {
  const all = fs('/srv/flag.yaml', '/srv/env.yaml', '/work/app/config/keygate.yaml', '/etc/keygate/keygate.yaml');

  it('takes -c first, then KEYGATE_CONFIG, then ./config/keygate.yaml, then the image path', () => {
    const env = { KEYGATE_CONFIG: '/srv/env.yaml' };
    expect(locateConfig(base({ flag: '/srv/flag.yaml', env, exists: all }))).toEqual({ file: '/srv/flag.yaml', source: 'flag' });
    expect(locateConfig(base({ env, exists: all }))).toEqual({ file: '/srv/env.yaml', source: 'env' });
    expect(locateConfig(base({ exists: all }))).toEqual({ file: '/work/app/config/keygate.yaml', source: 'checkout' });
    expect(locateConfig(base({ exists: fs('/etc/keygate/keygate.yaml') }))).toEqual({ file: '/etc/keygate/keygate.yaml', source: 'image' });
  });

  it('resolves -c and KEYGATE_CONFIG against the working folder; an empty KEYGATE_CONFIG is unset', () => {
    expect(locateConfig(base({ flag: 'conf/k.yaml', exists: fs('/work/app/conf/k.yaml') })).file).toBe('/work/app/conf/k.yaml');
    expect(locateConfig(base({ env: { KEYGATE_CONFIG: '../k.yaml' }, exists: fs('/work/k.yaml') })).file).toBe('/work/k.yaml');
    expect(locateConfig(base({ env: { KEYGATE_CONFIG: '' }, exists: all })).source).toBe('checkout');
  });

  it('never falls through from a file named explicitly that does not exist', () => {
    const byFlag = fault(() => locateConfig(base({ flag: '/srv/missing.yaml', exists: all })));
    expect([byFlag.code, byFlag.message]).toEqual(['KG_ERR_NOT_FOUND', 'config /srv/missing.yaml: no such file (given with -c)']);
    const byEnv = fault(() => locateConfig(base({ env: { KEYGATE_CONFIG: '/srv/missing.yaml' }, exists: all })));
    expect(byEnv.message).toBe('config /srv/missing.yaml: no such file (named by KEYGATE_CONFIG)');
  });

  it('names both fallbacks when neither exists', () => {
    const none = fault(() => locateConfig(base({ exists: fs() })));
    expect(none.code).toBe('KG_ERR_NOT_FOUND');
    expect(none.message).toBe('no config file: not given with -c, KEYGATE_CONFIG is not set, and neither /work/app/config/keygate.yaml nor /etc/keygate/keygate.yaml exists');
  });
});
