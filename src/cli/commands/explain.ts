// keygate explain — placeholder until the lifecycle issue lands.
import type { Register } from '../program.js';

export const registerExplain: Register = (program) => {
  program.command('explain').description('which rule allows or denies a request, and which rate policy applies');
};
