// Scopes keygate defines itself. `keygate:admin` admits a credential to the admin API; it has
// no rules on the public listener, so it never opens an upstream path by accident.
export const ADMIN_SCOPE = 'keygate:admin';
export const BUILTIN_SCOPES: ReadonlySet<string> = new Set([ADMIN_SCOPE]);
