import { Option } from 'commander';
import { serveMain } from '../../main.js';
import { mountAdminApi } from '../../admin/api.js';
import type { Register } from '../program.js';
import { withConfigOption } from '../support.js';

export const registerServe: Register = (program, _io, env) => {
  withConfigOption(program.command('serve'))
    .description('run the proxy with this config (reloads on file change and SIGHUP; drains on SIGTERM)')
    .addOption(new Option('--log-level <level>', 'operational log level').choices(['debug', 'info', 'warn', 'error']))
    .action(async (opts: { config: string; logLevel?: string }) => {
      if (opts.logLevel) env.KEYGATE_LOG_LEVEL = opts.logLevel;
      await serveMain({ configFile: opts.config, env, adminApi: mountAdminApi });
    });
};
