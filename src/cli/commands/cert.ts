// keygate cert issue | bind | list | unbind — placeholder until the client-certificate issue lands.
import type { Register } from '../program.js';

export const registerCert: Register = (program) => {
  program.command('cert').description('client certificates of service accounts');
};
