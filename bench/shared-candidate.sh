#!/usr/bin/env bash
# keygate as the candidate of the shared overhead harness (../shared/bench, run from a copy).
#
# The harness sends CANDIDATE_API_KEY from the moment it starts the candidate, so the token has
# to exist before run.sh does: `prepare` writes a config and a credential store and prints the
# token; run.sh's CANDIDATE_CMD then only execs `serve`. `run` does both for you.
#
#   bench/shared-candidate.sh prepare DIR HARNESS   config + account acct_0500 (token, CN binding
#                                                   for bench-client) in DIR; prints the token
#   bench/shared-candidate.sh serve DIR             exec keygate serve (the CANDIDATE_CMD)
#   bench/shared-candidate.sh run HARNESS [DIR]     prepare, then HARNESS/run.sh with keygate as
#                                                   the candidate on 127.0.0.1:9443 (API key) and
#                                                   :9444 (client certificates); other knobs
#                                                   (ROUNDS, TARGETS, LOADGEN…) pass through;
#                                                   KEYGATE_NODE_FLAGS adds node flags to keygate's;
#                                                   CANDIDATE=contract runs bench/contract-proxy.mjs
#                                                   (the minimal proxy + keygate's wire contract)
#                                                   as the candidate instead, API key port only
#
# keygate.yaml reads the harness's exported variables itself (${ENV} substitution), so the very
# same file serves whatever ports and files run.sh hands over: BENCH_TLS_CERT, BENCH_TLS_KEY,
# BENCH_CA (server CA, and also the issuer of the harness's client.crt), BENCH_UPSTREAM,
# BENCH_PORT (API-key port), BENCH_MTLS_PORT (listen.clientAuth.port: every connection there is
# in client-certificate mode, so the harness needs no SNI).
set -euo pipefail

export KEYGATE_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLI="$KEYGATE_ROOT/dist/cli/keygate.js"
ACCOUNT="${CANDIDATE_ACCOUNT:-acct_0500}"
PORT="${CANDIDATE_PORT:-9443}"
MTLS_PORT="${CANDIDATE_MTLS_PORT:-9444}"

die() { echo "shared-candidate: $*" >&2; exit 1; }
[[ -f $CLI ]] || die "$CLI missing: run npm run build first"

write_config() { # dir
  cat >"$1/keygate.yaml" <<'YAML'
# keygate as the shared harness's candidate. Every ${BENCH_*} is exported by run.sh.
listen:
  host: 127.0.0.1
  port: ${BENCH_PORT}
  tls: { cert: "${BENCH_TLS_CERT}", key: "${BENCH_TLS_KEY}" }
  clientAuth:
    ca: "${BENCH_CA}"            # the harness's client.crt (CN=bench-client) chains to this CA
    port: ${BENCH_MTLS_PORT}     # client-certificate mode for every connection, no SNI needed
admin: { host: 127.0.0.1, port: 0 }
routes:
  - { pathPrefix: /, upstream: "${BENCH_UPSTREAM}", timeout: 30s }
scopes:
  bench:read: [GET /, GET /**]
roles:
  bench: [bench:read]
policies:
  # Like the NGINX reference (limit_req at 1000000r/s): enforced, never reached.
  default: { rate: 1000000/s, burst: 1000000 }
store: { file: credentials.yaml }
audit: { output: audit.log }
shutdown: { drainTimeout: 2s }
YAML
}

# The variables run.sh will export, for the CLI steps that read the config before run.sh runs.
harness_env() { # harness dir
  export BENCH_TLS_CERT="$1/pki/server-chain.crt" BENCH_TLS_KEY="$1/pki/server.key" BENCH_CA="$1/pki/ca.crt" \
    BENCH_UPSTREAM="http://127.0.0.1:8080" BENCH_PORT="$PORT" BENCH_MTLS_PORT="$MTLS_PORT"
}

prepare() { # dir harness -> prints the token
  local dir=$1 harness=$2
  [[ -f $harness/pki/ca.crt ]] || die "$harness/pki/ca.crt missing: run $harness/setup.sh first"
  mkdir -p "$dir"
  rm -f "$dir/credentials.yaml" "$dir/credentials.usage.json" "$dir/audit.log"
  write_config "$dir"
  harness_env "$harness"
  local cfg="$dir/keygate.yaml"
  node "$CLI" account create --name "$ACCOUNT" --role bench --description "shared bench candidate" -c "$cfg" >/dev/null
  local token
  token=$(node "$CLI" token create --account "$ACCOUNT" --label shared-bench -c "$cfg")
  # The binding by subject CN; written into the store directly when this build has no `cert bind`.
  if ! node "$CLI" cert bind --account "$ACCOUNT" --cn bench-client -c "$cfg" >/dev/null 2>&1; then
    node --input-type=module - "$dir/credentials.yaml" "$ACCOUNT" <<'JS'
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const YAML = createRequire(process.env.KEYGATE_ROOT + '/package.json')('yaml');
const [file, account] = process.argv.slice(2);
const data = YAML.parse(readFileSync(file, 'utf8'));
(data.certificates ??= []).push({ id: 'crt_sharedbench1', account, match: 'cn', value: 'bench-client', nickname: 'shared bench',
  endDate: null, scopes: null, policy: null, createdAt: new Date().toISOString(), serial: null, notAfter: null });
writeFileSync(file, YAML.stringify(data), { mode: 0o600 });
JS
  fi
  node "$CLI" check -c "$cfg" >&2 || die "keygate check failed for $cfg"
  printf '%s\n' "$token"
}

cmd=${1:-}
case $cmd in
  prepare)
    [[ $# -eq 3 ]] || die "usage: $0 prepare DIR HARNESS"
    prepare "$(realpath -m "$2")" "$(realpath "$3")"
    ;;
  serve)
    [[ $# -eq 2 ]] || die "usage: $0 serve DIR"
    [[ -f $2/keygate.yaml ]] || die "$2/keygate.yaml missing: run $0 prepare first"
    cd "$2"
    # KEYGATE_NODE_FLAGS: V8/Node flags for keygate alone (e.g. --max-semi-space-size=64), not
    # for the harness's other Node processes as NODE_OPTIONS would be.
    # shellcheck disable=SC2086
    exec node ${KEYGATE_NODE_FLAGS:-} "$CLI" serve -c keygate.yaml
    ;;
  run)
    [[ $# -ge 2 ]] || die "usage: $0 run HARNESS [DIR]"
    harness=$(realpath "$2")
    dir=$(realpath -m "${3:-$(mktemp -d /tmp/keygate-candidate.XXXX)}")
    token=$(prepare "$dir" "$harness")
    echo "shared-candidate: keygate config and credentials in $dir (audit: $dir/audit.log)" >&2
    cd "$harness"
    if [[ ${CANDIDATE:-keygate} == contract ]]; then
      CANDIDATE_URL="https://127.0.0.1:$PORT/" CANDIDATE_MTLS_URL="" CANDIDATE_API_KEY="$token" CANDIDATE_ACCOUNT="$ACCOUNT" \
        CANDIDATE_CMD="BENCH_TOKEN='$token' AUDIT_FILE='$dir/contract-audit.log' exec node '$KEYGATE_ROOT/bench/contract-proxy.mjs'" \
        exec ./run.sh
    fi
    CANDIDATE_URL="https://127.0.0.1:$PORT/" CANDIDATE_MTLS_URL="https://127.0.0.1:$MTLS_PORT/" \
      CANDIDATE_API_KEY="$token" CANDIDATE_ACCOUNT="$ACCOUNT" \
      CANDIDATE_CMD="exec '$KEYGATE_ROOT/bench/shared-candidate.sh' serve '$dir'" \
      exec ./run.sh
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
