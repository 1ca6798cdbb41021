// The one catalog of answers keygate gives itself. Every entry has a stable code, an HTTP
// status, a title, a default detail (what happened, in terms the caller already knows) and a
// hint (what to do). docs/errors.md documents every code; test/unit/error-catalog.test.ts
// keeps the two in step. `reason` is the bounded label used in metrics and audit.

export interface ErrorSpec {
  status: number;
  title: string;
  detail: string;
  hint: string;
  reason: string;
  /** Exit code of a CLI command that fails with this code (docs/cli.md). */
  exit: number;
}

/**
 * Exit codes of the CLI (docs/cli.md has the table): 0 ok, then one per kind of failure. A code
 * below names its own; every other code is `invalid` (the input — a value, a file keygate was
 * given — is wrong). `keygate explain` also exits 1 when the request would be denied.
 */
export const EXIT = { ok: 0, invalid: 1, usage: 2, notFound: 3, conflict: 4, store: 5 } as const;

const spec = (status: number, reason: string, title: string, detail: string, hint: string, exit: number = EXIT.invalid): ErrorSpec => ({ status, reason, title, detail, hint, exit });

export const ERRORS = {
  // 400: the request itself
  KG_ERR_MALFORMED_REQUEST: spec(400, 'malformed_request', 'Malformed request', 'The request is not valid HTTP/1.1.', 'Send a well-formed HTTP/1.1 request (request line, then headers, each ending in CRLF).'),
  KG_ERR_REQUEST_TIMEOUT: spec(408, 'request_timeout', 'Request timeout', 'The request did not arrive in time.', 'Send the whole request without pausing; the limits are listen.limits.headersTimeout and requestTimeout.'),
  KG_ERR_HEADERS_TOO_LARGE: spec(431, 'headers_too_large', 'Request headers too large', 'The request head is larger than this keygate accepts.', 'Send fewer or smaller headers; the limit is listen.limits.maxHeaderSize.'),
  KG_ERR_PATH_INVALID: spec(400, 'path_invalid', 'Malformed or ambiguous request path', 'The request path cannot be normalized unambiguously.', 'Send an origin-form path without encoded "/" or "\\", NUL, invalid percent-encoding, ".." above the root, "." or ".." with ";parameters", or a character RFC 3986 wants percent-encoded (space, controls, <>"{}|\\^`).'),
  KG_ERR_HOST_INVALID: spec(400, 'host_invalid', 'Missing or invalid Host', 'The request must carry exactly one Host header naming a host, optionally with a port.', 'Send one Host header of the form host or host:port (an HTTP/1.1 request must have one; two are refused).'),
  KG_ERR_HEADER_UNDERSCORE: spec(400, 'header_underscore', 'Header name with an underscore', 'A request header name contains "_", which this keygate refuses.', 'Rename the header with "-" instead of "_"; operators: listen.headersWithUnderscores decides (drop, reject, allow).'),
  KG_ERR_TOKEN_IN_QUERY: spec(400, 'token_in_query', 'API token in the query string', 'The query string carries an API token; URLs end up in logs and browser histories, so keygate refuses it.', 'Send the token in the x-api-key header or as "Authorization: Bearer <token>", never in the URL; consider the token exposed and rotate it.'),
  KG_ERR_EXPECTATION_FAILED: spec(417, 'expectation_failed', 'Expectation not supported', 'The Expect header asks for something other than 100-continue.', 'Send no Expect header, or "Expect: 100-continue" alone.'),
  // 401: who is calling
  KG_ERR_CREDENTIAL_MISSING: spec(401, 'credential_missing', 'Credential required', 'No API token was sent.', 'Send the token in the x-api-key header or as "Authorization: Bearer <token>".'),
  KG_ERR_CREDENTIAL_AMBIGUOUS: spec(401, 'credential_ambiguous', 'More than one credential', 'The request carries more than one credential.', 'Send exactly one token, in x-api-key or in Authorization, not both and not twice.'),
  KG_ERR_TOKEN_MALFORMED: spec(401, 'token_malformed', 'Malformed API token', 'The API token is not in keygate format or its checksum does not match.', 'Copy the whole token as it was printed at creation (it starts with kg_); it may have been truncated.'),
  KG_ERR_TOKEN_WRONG_ENVIRONMENT: spec(401, 'token_wrong_environment', 'API token of another environment', 'The API token was issued for another environment.', 'Use a token created for this environment; tokens carry their environment in the prefix (kg_<env>_).'),
  KG_ERR_TOKEN_UNKNOWN: spec(401, 'token_unknown', 'Unknown API token', 'The API token is not known.', 'Check that the token was created for this keygate and has not been deleted.'),
  KG_ERR_TOKEN_EXPIRED: spec(401, 'token_expired', 'API token expired', 'The API token has expired.', 'Ask the account owner for a new token (keygate token create or token rotate).'),
  KG_ERR_TOKEN_REVOKED: spec(401, 'token_revoked', 'API token revoked', 'The API token was revoked.', 'Ask the account owner for a new token; a revoked token can be restored by an administrator if the revocation was a mistake.'),
  KG_ERR_ACCOUNT_DISABLED: spec(401, 'account_disabled', 'Service account disabled', 'The service account this credential belongs to is disabled.', 'Ask an administrator to enable the account (keygate account enable).'),
  KG_ERR_ACCOUNT_ENDED: spec(401, 'account_ended', 'Service account ended', 'The service account this credential belongs to is past its end date.', 'Ask an administrator to extend the account end date (keygate account update --end-date).'),
  KG_ERR_CERT_MISSING: spec(401, 'cert_missing', 'Client certificate required', 'This host requires a client certificate and none was presented.', 'Present a client certificate issued by the configured client CA (curl --cert/--key).'),
  KG_ERR_CERT_UNTRUSTED: spec(401, 'cert_untrusted', 'Client certificate not trusted', 'The client certificate does not chain to a trusted client CA.', 'Use a certificate issued by the configured client CA, and send its intermediate certificates.'),
  KG_ERR_CERT_EXPIRED: spec(401, 'cert_expired', 'Client certificate expired', 'The client certificate is expired or not yet valid.', 'Renew the client certificate (keygate cert issue) and check the client clock.'),
  KG_ERR_CERT_REVOKED: spec(401, 'cert_revoked', 'Client certificate revoked', 'The client certificate is on the revocation list.', 'Ask the account owner for a new certificate.'),
  KG_ERR_CERT_UNBOUND: spec(401, 'cert_unbound', 'Client certificate not bound', 'The client certificate is trusted but bound to no service account.', 'Bind it to an account (keygate cert bind) or use a certificate issued by keygate cert issue.'),
  KG_ERR_CERT_BINDING_ENDED: spec(401, 'cert_binding_ended', 'Certificate binding ended', 'The certificate binding that matches this certificate is past its end date.', 'Ask an administrator to bind a current certificate.'),
  // 403: what the caller may do
  KG_ERR_SCOPE_DENIED: spec(403, 'scope_denied', 'Permission denied', 'No scope of this credential allows this method and path.', 'Ask the account owner for a credential with the scope named in detail; keygate explain shows which rule applies.'),
  // 404 / 421: where the request went
  KG_ERR_NO_ROUTE: spec(404, 'no_route', 'No route', 'No route is configured for this path.', 'Check the URL; routes are listed in keygate.yaml.'),
  KG_ERR_MISDIRECTED: spec(421, 'misdirected', 'Misdirected request', 'The Host header names a host of the other authentication mode than the TLS server name.', 'Connect to the host you address: use the same name for SNI and Host (curl --resolve, not a Host override).'),
  // 429: how often
  KG_ERR_RATE_LIMITED: spec(429, 'rate_limited', 'Rate limit exceeded', 'This credential has used its request budget.', 'Wait for the number of seconds in Retry-After; RateLimit-* headers show the budget.'),
  KG_ERR_AUTH_RATE_LIMITED: spec(429, 'auth_rate_limited', 'Too many failed authentications', 'Too many requests from this address failed authentication.', 'Fix the credential, then retry after Retry-After seconds.'),
  // 5xx: keygate or the upstream
  KG_ERR_UPSTREAM_UNAVAILABLE: spec(502, 'upstream_unavailable', 'Upstream unavailable', 'The upstream refused the connection or failed while answering.', 'Retry later; if it persists, the API behind keygate is down.'),
  KG_ERR_UPSTREAM_TIMEOUT: spec(504, 'upstream_timeout', 'Upstream timed out', 'The upstream did not answer in time.', 'Retry later; the route timeout is set in keygate.yaml.'),
  KG_ERR_MAINTENANCE: spec(503, 'maintenance', 'Maintenance', 'The service is in maintenance mode.', 'Retry after Retry-After seconds.'),
  KG_ERR_SHUTTING_DOWN: spec(503, 'shutting_down', 'Shutting down', 'This keygate instance is shutting down.', 'Retry; another instance will answer.'),
  KG_ERR_STORE_UNAVAILABLE: spec(503, 'store_unavailable', 'Credential store unavailable', 'The credential store cannot be reached, and keygate is configured to fail closed.', 'Retry later; operators: the detail (or the keygate log) names the store and what failed.', EXIT.store),
  KG_ERR_INTERNAL: spec(500, 'internal', 'Internal error', 'keygate could not handle this request.', 'Retry; if it persists, operators: look up this requestId in the keygate log.'),
  // admin API
  KG_ERR_BAD_REQUEST: spec(400, 'bad_request', 'Bad request', 'The request is not valid.', 'Check the request against docs/admin-api.md.'),
  KG_ERR_NOT_FOUND: spec(404, 'not_found', 'Not found', 'No such resource.', 'Check the name or id.', EXIT.notFound),
  KG_ERR_CONFLICT: spec(409, 'conflict', 'Conflict', 'The request conflicts with the current state.', 'Read the detail, then change the request or the state it conflicts with.', EXIT.conflict),
  KG_ERR_METHOD_NOT_ALLOWED: spec(405, 'method_not_allowed', 'Method not allowed', 'This resource does not support this method.', 'Use a method the resource supports: keygate is not a forward proxy and never tunnels CONNECT; for the admin API see docs/admin-api.md.'),
  KG_ERR_BODY_TOO_LARGE: spec(413, 'body_too_large', 'Request body too large', 'The request body is larger than this endpoint accepts.', 'Send a smaller body.'),
  // keygate's own files and commands: raised inside keygate, answered by the admin API or the CLI
  KG_ERR_CONFIG_INVALID: spec(503, 'config_invalid', 'Configuration has errors', 'A file keygate reads (keygate.yaml or the credential store) has errors; nothing was changed.', 'Operators: run keygate check, which prints every problem as file:line:col.'),
  KG_ERR_TLS_MATERIAL: spec(503, 'tls_material', 'TLS files unusable', 'A certificate, key, CA or CRL file cannot be used.', 'Operators: run keygate check; fix or replace the file named in the message.'),
  KG_ERR_STORE_LOCKED: spec(503, 'store_locked', 'Credential store busy', 'The credential store is locked by another keygate command; nothing was changed.', 'Retry after Retry-After seconds.', EXIT.store),
  KG_ERR_STORE_READ_ONLY: spec(405, 'store_read_only', 'Credential store read-only', 'This keygate instance cannot write its credential store; nothing was changed.', 'Change credentials where the store is managed (for a mounted Secret: update the Secret), or give keygate a writable store.', EXIT.store),
  KG_ERR_USAGE: spec(400, 'usage', 'Invalid command line', 'The command line is not valid.', 'Run the command with --help for its arguments and options.', EXIT.usage),
  KG_ERR_EXPLAIN_INPUT: spec(400, 'explain_input', 'Cannot explain this request', 'The request to explain names something that does not exist or is not a request.', 'Name an existing account (and one of its tokens), an HTTP method and a path starting with "/".', EXIT.usage),
  KG_ERR_PKI_EXISTS: spec(409, 'pki_exists', 'PKI files exist', 'The output folder already holds PKI files.', 'Choose another folder, or pass --force to replace them.', EXIT.conflict),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;
