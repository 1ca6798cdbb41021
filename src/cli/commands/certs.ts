// keygate certs init — the development PKI: a server CA, one server certificate for every
// host and its client-certificate twin (clientauth.<host>), and a client CA whose key
// `keygate cert issue` signs with. For development and tests; production brings its own.
import { isAbsolute, relative, resolve } from 'node:path';
import { isIP } from 'node:net';
import { initDevPki } from '../../pki/dev-pki.js';
import type { Register } from '../program.js';
import { CliError, collect, examples, formatOf, render, withFormatOption } from '../support.js';

/** Paths under the working folder print relative (shorter to paste), others absolute. */
function rel(file: string): string {
  const r = relative(process.cwd(), file);
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : resolve(file);
}

const HOST = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export const registerCerts: Register = (program, io) => {
  const certs = program.command('certs').description('development PKI');
  examples(certs, 'keygate certs init --out certs-dev --host localhost');

  const init = withFormatOption(certs.command('init'))
    .description('create a dev PKI: server CA, server certificate for each host and clientauth.<host>, client CA')
    .requiredOption('--out <dir>', 'folder to write into (created if missing)')
    .requiredOption('--host <name...>', 'server host names or IP addresses (repeat or comma-separate)', collect)
    .option('--prefix <prefix>', 'client-certificate host prefix (listen.clientAuth.hostPrefix)', 'clientauth.')
    .option('--days <n>', 'validity of the server certificate in days', '825')
    .option('--force', 'replace existing files (certificates issued by the old CAs stop working)')
    .action(async (opts: { out: string; host: string[]; prefix: string; days: string; force?: boolean; format?: string }) => {
      const format = formatOf(opts);
      for (const h of opts.host) if (isIP(h) === 0 && !HOST.test(h)) throw new CliError(`"${h}" is not a host name or IP address`, 'KG_ERR_USAGE');
      if (!/^\d+$/.test(opts.days) || Number(opts.days) < 1 || Number(opts.days) > 3650) throw new CliError(`invalid --days "${opts.days}": a whole number from 1 to 3650`, 'KG_ERR_USAGE');
      if (!/^[a-z0-9-]+\.$/i.test(opts.prefix)) throw new CliError(`invalid --prefix "${opts.prefix}": a DNS label and a dot, e.g. clientauth.`, 'KG_ERR_USAGE');
      // Existing files end it as KG_ERR_PKI_EXISTS (exit 4, a conflict with what is there).
      const r = await initDevPki(opts.out, opts.host, { days: Number(opts.days), prefix: opts.prefix.toLowerCase(), force: opts.force });
      const rows: Array<[string, string]> = [
        [r.caCert, 'server CA: clients trust it (curl --cacert)'],
        [r.caKey, 'server CA key (mode 0600)'],
        [r.serverCert, `server certificate and CA for ${r.names.join(', ')} → listen.tls.cert`],
        [r.serverKey, 'server key (mode 0600) → listen.tls.key'],
        [r.clientCaCert, 'client CA → listen.clientAuth.ca'],
        [r.clientCaKey, 'client CA key (mode 0600) → listen.clientAuth.caKey, for keygate cert issue'],
      ];
      if (format !== 'table') {
        io.out(render(format, rows.map(([file, what]) => ({ file: resolve(file), what })), ['file', 'what']));
        return;
      }
      const width = Math.max(...rows.map(([f]) => rel(f).length));
      io.out(rows.map(([f, what]) => `${rel(f).padEnd(width)}  ${what}`).join('\n') + '\n');
    });
  examples(init, 'keygate certs init --out certs-dev --host localhost', 'keygate certs init --out deploy/docker/tls --host localhost,keygate.internal --days 365');
};
