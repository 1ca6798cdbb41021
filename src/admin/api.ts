// The admin API (HTTP+JSON under /admin/v1) — placeholder until the lifecycle issue lands.
import { KeygateError } from '../errors/keygate-error.js';
import { writeProblem } from '../errors/problem.js';
import type { AdminApiContext } from '../instance.js';
import type { AdminApiHandler } from './server.js';

export function mountAdminApi(_ctx: AdminApiContext): AdminApiHandler {
  return (_req, res) => writeProblem(res, new KeygateError('KG_ERR_NOT_FOUND'), 'admin');
}
