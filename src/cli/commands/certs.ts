// keygate certs init — placeholder until the client-certificate issue lands.
import type { Register } from '../program.js';

export const registerCerts: Register = (program) => {
  program.command('certs').description('development PKI');
};
