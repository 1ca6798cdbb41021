#!/usr/bin/env bash
# CPU profiles of keygate and of the shared harness's minimal Node proxy under the same load,
# one after the other, for flame graphs that can be compared box by box.
#
#   bench/profile-vs-baseline.sh HARNESS OUTDIR [LABEL]
#
# HARNESS is a set-up copy of ../shared/bench (see README.md). Starts the harness's Node
# upstream (CPU 1), then for each proxy — node-baseline/proxy.mjs, keygate with the API token,
# keygate with the client certificate (wrk + the harness's client-cert shim) — runs it pinned to
# CPU 0 under `node --cpu-prof`, drives it with wrk (1 thread, CONNS=64 connections, DURATION=15 s,
# CPU 1), stops it, and writes OUTDIR/<LABEL>-<proxy>.cpuprofile, the wrk figures, the proxy's
# CPU µs/request (from /proc) and the machine's load; then bench/flamegraph.mjs draws each.
# Everything listens on 127.0.0.1 (ports 18080, 18445, 19443, 19444); every process started is
# stopped by pid. keygate is the build in dist/ (npm run build first); KEYGATE_NODE_FLAGS adds
# node flags to keygate's command line; PROXIES="node token mtls" picks the proxies ("contract" adds
# bench/contract-proxy.mjs, the minimal proxy plus keygate's wire contract).
set -euo pipefail
HARNESS=$(realpath "${1:?usage: $0 HARNESS OUTDIR [LABEL]}")
OUT=$(realpath -m "${2:?usage: $0 HARNESS OUTDIR [LABEL]}")
LABEL=${3:-run}
KG=$(cd "$(dirname "$0")/.." && pwd)
CONNS=${CONNS:-64}
DURATION=${DURATION:-15}
PROXIES=${PROXIES:-"node token mtls"}
mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

taskset -c 1 node "$HARNESS/upstream/upstream.mjs" 18080 >/dev/null & pids+=($!)
cand=$(mktemp -d /tmp/kg-prof-cand.XXXX)
export CANDIDATE_PORT=19443 CANDIDATE_MTLS_PORT=19444
TOKEN=$("$KG/bench/shared-candidate.sh" prepare "$cand" "$HARNESS")
export BENCH_TLS_CERT="$HARNESS/pki/server-chain.crt" BENCH_TLS_KEY="$HARNESS/pki/server.key" BENCH_CA="$HARNESS/pki/ca.crt" \
  BENCH_UPSTREAM=http://127.0.0.1:18080 BENCH_PORT=19443 BENCH_MTLS_PORT=19444

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; return 1; }

for proxy in $PROXIES; do
  prof=$(mktemp -d /tmp/kg-prof.XXXX)
  case $proxy in
    node) PORT=18445 UPSTREAM=http://127.0.0.1:18080 taskset -c 0 node --cpu-prof --cpu-prof-dir "$prof" "$HARNESS/node-baseline/proxy.mjs" >/dev/null & port=18445 ;;
    contract) PORT=18446 UPSTREAM=http://127.0.0.1:18080 BENCH_TOKEN=$TOKEN AUDIT_FILE="$cand/contract-audit.log" taskset -c 0 node --cpu-prof --cpu-prof-dir "$prof" "$KG/bench/contract-proxy.mjs" >/dev/null & port=18446 ;;
    # shellcheck disable=SC2086
    token|mtls) (cd "$cand" && exec taskset -c 0 node ${KEYGATE_NODE_FLAGS:-} --cpu-prof --cpu-prof-dir "$prof" "$KG/dist/cli/keygate.js" serve -c keygate.yaml) >/dev/null 2>&1 & port=19443 ;;
  esac
  pid=$!; pids+=("$pid")
  wait_port "$port"; [[ $proxy == mtls ]] && wait_port 19444
  url=https://127.0.0.1:$port/; key=$(sed -n 501p "$HARNESS/keys/keys.txt"); pre=()
  [[ $proxy == token || $proxy == contract ]] && key=$TOKEN
  if [[ $proxy == mtls ]]; then
    url=https://127.0.0.1:19444/; key=
    pre=(env LD_PRELOAD="$HARNESS/loadgen/wrk-clientcert.so" WRK_CLIENT_CERT="$HARNESS/pki/client.crt" WRK_CLIENT_KEY="$HARNESS/pki/client.key")
  fi
  BENCH_API_KEY=$key taskset -c 1 "${pre[@]}" wrk -t1 -c"$CONNS" -d2s -s "$HARNESS/loadgen/report.lua" "$url" >/dev/null
  t0=$(cpu_ticks "$pid"); load0=$(cut -d' ' -f1-3 /proc/loadavg)
  res=$(BENCH_API_KEY=$key taskset -c 1 "${pre[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$HARNESS/loadgen/report.lua" "$url" | grep BENCHJSON)
  t1=$(cpu_ticks "$pid"); load1=$(cut -d' ' -f1-3 /proc/loadavg)
  kill -INT "$pid"; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  reqs=$(sed 's/.*"requests":\([0-9]*\).*/\1/' <<<"$res")
  us=$(awk -v a="$t0" -v b="$t1" -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", (b-a)/hz*1e6/n}')
  echo "$LABEL $proxy: $us µs/req (profiled) load $load0 -> $load1 ${res#BENCHJSON }" | tee -a "$OUT/$LABEL-figures.txt"
  # The main thread's profile is *.0.001.*; a worker thread (the file store's reader) writes its own.
  main=$(ls "$prof"/*.0.001.cpuprofile 2>/dev/null || ls "$prof"/*.cpuprofile | head -1)
  mv "$main" "$OUT/$LABEL-$proxy.cpuprofile"
  i=0; for f in "$prof"/*.cpuprofile; do [[ -e $f ]] || continue; i=$((i+1)); mv "$f" "$OUT/$LABEL-$proxy.thread$i.cpuprofile"; done
  rmdir "$prof"
  node "$KG/bench/flamegraph.mjs" "$OUT/$LABEL-$proxy.cpuprofile" "$OUT/$LABEL-$proxy" "$LABEL $proxy: $us µs/req under --cpu-prof, load $load0" >/dev/null
done
rm -rf "$cand"
