import { Option } from 'commander';
import { serveMain } from '../../main.js';
import { mountAdminApi } from '../../admin/api.js';
import type { Register } from '../program.js';
import { examples, JSON_LOG_COMMANDS, withConfigOption } from '../support.js';

export const registerServe: Register = (program, _io, env) => {
  const serve = withConfigOption(program.command('serve'))
    .description('run the proxy with this config (reloads on file change and SIGHUP; drains on SIGTERM); logs JSON lines on stderr')
    .addOption(new Option('--log-level <level>', 'operational log level').choices(['debug', 'info', 'warn', 'error']))
    .action(async (opts: { config: string; logLevel?: string }) => {
      if (opts.logLevel) env.KEYGATE_LOG_LEVEL = opts.logLevel;
      await serveMain({ configFile: opts.config, env, adminApi: mountAdminApi });
    });
  // Its stderr is the operational log: a failure to start is a JSON log line too.
  JSON_LOG_COMMANDS.add(serve);
  examples(serve, 'keygate serve -c /etc/keygate/keygate.yaml', 'KEYGATE_CONFIG=/etc/keygate/keygate.yaml keygate serve --log-level debug');
};
