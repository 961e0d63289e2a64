#!/usr/bin/env bash
# Benchmarks a freshly started IdP on this machine (loopback only) with idp-load.
#
#   loadtest/run.sh            embedded default: SQLite file + in-process store
#   loadtest/run.sh --pg       PostgreSQL (a fresh database on postgres://postgres@127.0.0.1:5432,
#                              dropped afterwards) + Redis (redis://127.0.0.1:6379, random key prefix)
#
# Everything after the flags is passed to `idp-load run` (e.g. --duration 5 --scenario sso).
# Environment: CONCURRENCY (32), DURATION (10), WARMUP (2), OPEN_FRACTION (0.5), THREADS (1),
# OUT (results folder, default a temporary one that is kept and printed), QUIET_WAIT (seconds to
# wait for the machine to go idle before measuring, default 120: a build running beside the
# benchmark takes a core from it; idp-load flags runs that were disturbed anyway),
# SOAK (seconds of mixed load for the memory figure after the scenarios, default 300: RSS is
# sampled every 5 s and reported at 40 % of the soak — minute 2 of 5 — and at its end; 0 skips).
# NO_BUILD=1 uses the binaries already in target/release.
# PEER=1: instead of the scenarios, the side by side with panva's oidc-provider (installed from
# npm into target/peer, production mode, in-memory adapter, scripts/peer/provider.mjs): the same
# client_credentials and SSO scenarios against ours and the peer in turn, ROUNDS (3) times, and
# the ratio of the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PG=0
if [ "${1:-}" = "--pg" ]; then
  PG=1
  shift
fi

PG_ADMIN=postgres://postgres@127.0.0.1:5432/postgres
REDIS_URL=redis://127.0.0.1:6379

if [ -z "${NO_BUILD:-}" ]; then
  echo "== build (release)" >&2
  cargo build --release -q -p idp -p loadtest
fi
# BIN_DIR=target/debug with NO_BUILD=1 checks the script itself quickly (figures meaningless).
BIN_DIR=$(realpath "${BIN_DIR:-$ROOT/target/release}")
IDP=$BIN_DIR/idp
LOAD=$BIN_DIR/idp-load

WORK=$(mktemp -d "${TMPDIR:-/tmp}/idp-load.XXXXXX")
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
SERVER_PID=
PEER_PID=
DB_NAME=
KEY_PREFIX=

cleanup() {
  if [ -n "$PEER_PID" ] && kill -0 "$PEER_PID" 2>/dev/null; then
    kill "$PEER_PID" 2>/dev/null || true
    wait "$PEER_PID" 2>/dev/null || true
  fi
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$DB_NAME" ]; then
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ -n "$KEY_PREFIX" ] && command -v redis-cli >/dev/null; then
    redis-cli -u "$REDIS_URL" --scan --pattern "${KEY_PREFIX}*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" DEL >/dev/null || true
  fi
  rm -rf "$WORK/data" "$WORK"/*.csv
}
trap cleanup EXIT

random() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

PORT=$("$LOAD" free-port)
BASE=http://127.0.0.1:$PORT
export IDP_DATA_DIR=$WORK/data
export IDP_HTTP__BIND=127.0.0.1:$PORT
export IDP_ISSUER=$BASE
export IDP_LOG__LEVEL=warn
unset IDP_CONFIG IDP_DATABASE__URL IDP_CACHE__URL IDP_CACHE__KEY_PREFIX
# The sign-in scenarios sign one account in hundreds of times a second from one address: the
# throttle would (rightly) hold them back, so the benchmark raises its limits.
export IDP_LOGIN__MAX_FAILURES_PER_ACCOUNT=100000000
export IDP_LOGIN__MAX_FAILURES_PER_ADDRESS=100000000
# Card sign-in trusts a test PKI with P-256 keys (the tool signs each challenge itself).
"$LOAD" pki --out "$WORK/pki" >"$WORK/pki.json"
pki_list() { python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(json.dumps([sys.argv[2]+"/"+f for f in m[sys.argv[3]]]))' "$WORK/pki.json" "$WORK/pki" "$1"; }
export IDP_CERTIFICATES__CITIZEN_TRUST_ANCHORS="$(pki_list citizen_trust_anchors)"
export IDP_CERTIFICATES__AGENCY_TRUST_ANCHORS="$(pki_list agency_trust_anchors)"
export IDP_CERTIFICATES__CRL_FILES="$(pki_list crl_files)"
SETUP="embedded (SQLite file + in-process store)"
if [ "$PG" = 1 ]; then
  DB_NAME=idp_load_$(random 6)
  psql -q "$PG_ADMIN" -c "CREATE DATABASE $DB_NAME" >/dev/null
  KEY_PREFIX="load:$(random 6):"
  export IDP_DATABASE__URL=postgres://postgres@127.0.0.1:5432/$DB_NAME
  export IDP_CACHE__URL=$REDIS_URL
  export IDP_CACHE__KEY_PREFIX=$KEY_PREFIX
  SETUP="PostgreSQL + Redis"
fi

cd "$WORK"
echo "== setup: $SETUP, $BASE, data in $WORK" >&2
"$IDP" agencies import "$ROOT/deploy/demo/agencies.csv" >/dev/null
"$IDP" personnel import "$ROOT/deploy/demo/personnel.csv" >/dev/null
"$IDP" clients create --name load-sso --redirect-uri http://127.0.0.1:9/cb --json >"$WORK/sso.json"
CC_ARGS=()
if "$IDP" clients create --help | grep -q -- '--grant-type'; then
  "$IDP" clients create --name load --redirect-uri http://127.0.0.1:9/cb --grant-type client_credentials --json \
    >"$WORK/cc.json"
  CC_ARGS=(--cc-client "$WORK/cc.json")
else
  echo "== this idp has no --grant-type: client_credentials and introspection will be skipped" >&2
fi
"$IDP" users reset-password --national-id A123456789 --email ming@example.gov.tw >/dev/null

"$IDP" serve 2>"$WORK/server.log" &
SERVER_PID=$!
"$LOAD" wait --base-url "$BASE" --timeout 60

# The one-time password from the helpdesk's mail, then activation through the pages.
MAIL=$(ls -t "$IDP_DATA_DIR/outbox/"*.eml | head -n 1)
OTP=$(sed -n 's/^[[:space:]]*一次性密碼: *//p' "$MAIL" | head -n 1 | tr -d '\r ')
[ -n "$OTP" ] || { echo "no one-time password in $MAIL" >&2; exit 1; }
export LOADTEST_USERNAME=loadtest01
export LOADTEST_PASSWORD="Load-$(random 8)-Bench"
LOADTEST_ONE_TIME_PASSWORD=$OTP "$LOAD" activate --base-url "$BASE" --username A123456789 \
  --account "$LOADTEST_USERNAME" --email ming@example.gov.tw

# Busy share of all CPUs over one second, in percent, from /proc/stat.
busy_pct() {
  local a b
  a=($(head -n 1 /proc/stat)); sleep 1; b=($(head -n 1 /proc/stat))
  local busy=0 total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  busy=$((total - (b[4] - a[4]) - (b[5] - a[5])))
  echo $((total > 0 ? 100 * busy / total : 0))
}
waited=0
while [ "$(busy_pct)" -gt 10 ] && [ "$waited" -lt "${QUIET_WAIT:-120}" ]; do
  [ "$waited" = 0 ] && echo "== waiting up to ${QUIET_WAIT:-120} s for the machine to go idle" >&2
  sleep 4
  waited=$((waited + 5))
done

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
IDLE_RSS=$(rss_kib)

if [ -n "${PEER:-}" ]; then
  PEER_DIR=$ROOT/target/peer
  if [ ! -f "$PEER_DIR/node_modules/oidc-provider/package.json" ]; then
    echo "== installing oidc-provider from npm into $PEER_DIR" >&2
    mkdir -p "$PEER_DIR"
    echo '{"name": "peer", "private": true, "type": "module"}' >"$PEER_DIR/package.json"
    npm install --prefix "$PEER_DIR" --no-audit --no-fund --loglevel error oidc-provider@9 >&2
  fi
  cp "$ROOT/scripts/peer/provider.mjs" "$PEER_DIR/provider.mjs"
  python3 -c 'import json,sys; print(json.dumps({"sso": json.load(open(sys.argv[1])), "cc": json.load(open(sys.argv[2])), "redirect_uri": "http://127.0.0.1:9/cb"}))' \
    "$WORK/sso.json" "$WORK/cc.json" >"$WORK/peer-clients.json"
  PEER_PORT=$("$LOAD" free-port)
  PEER_BASE=http://127.0.0.1:$PEER_PORT
  NODE_ENV=production PEER_PORT=$PEER_PORT PEER_CLIENTS=$WORK/peer-clients.json \
    node "$PEER_DIR/provider.mjs" 2>"$WORK/peer.log" &
  PEER_PID=$!
  "$LOAD" wait --base-url "$PEER_BASE" --timeout 60
  echo "peer: oidc-provider $(sed -n 's/^  "version": "\(.*\)",/\1/p' "$PEER_DIR/node_modules/oidc-provider/package.json"), node $(node --version)" \
    | tee "$OUT/results.txt"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/results.txt"
  for round in $(seq 1 "${ROUNDS:-3}"); do
    for scenario in client-credentials sso; do
      for side in ours peer; do
        base=$BASE
        pid=$SERVER_PID
        extra=()
        if [ "$side" = peer ]; then
          base=$PEER_BASE
          pid=$PEER_PID
          extra=(--peer)
        fi
        echo "== round $round: $scenario, $side" >&2
        "$LOAD" --threads "${THREADS:-1}" run --base-url "$base" "${extra[@]}" \
          --sso-client "$WORK/sso.json" "${CC_ARGS[@]}" --scenario "$scenario" \
          --concurrency "${CONCURRENCY:-32}" --duration "${DURATION:-10}" --warmup "${WARMUP:-2}" \
          --server-pid "$pid" --json-out "$OUT/$side-$scenario-$round.json" >/dev/null
      done
    done
  done
  python3 - "$OUT" <<'PY' | tee -a "$OUT/results.txt"
import glob, json, os, statistics, sys
out = sys.argv[1]
print(f"{'scenario':<20} {'ours /s':>10} {'peer /s':>10} {'ratio':>7}  {'ours µs/op':>10} {'peer µs/op':>10}  rounds")
for scenario in ["client-credentials", "sso"]:
    fig = {}
    for side in ["ours", "peer"]:
        rows = [json.load(open(f))["rows"][0] for f in sorted(glob.glob(os.path.join(out, f"{side}-{scenario}-*.json")))]
        fig[side] = (statistics.median(r["requests_per_s"] for r in rows),
                     statistics.median((r.get("server_cpu_us_per_op") or 0) for r in rows), len(rows))
    (o, ou, n), (p, pu, _) = fig["ours"], fig["peer"]
    print(f"{scenario:<20} {o:>10.0f} {p:>10.0f} {o / p if p else 0:>6.1f}x  {ou:>10.1f} {pu:>10.1f}  {n}")
PY
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/results.txt"
  echo "results: $OUT" >&2
  exit 0
fi

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load.txt" >&2
echo "== load: concurrency ${CONCURRENCY:-32}, ${DURATION:-10} s per run after ${WARMUP:-2} s warm-up" >&2
"$LOAD" --threads "${THREADS:-1}" run --base-url "$BASE" \
  --sso-client "$WORK/sso.json" "${CC_ARGS[@]}" --card "$WORK/pki/citizen-A123456789.pem" \
  --concurrency "${CONCURRENCY:-32}" --duration "${DURATION:-10}" --warmup "${WARMUP:-2}" \
  --open-fraction "${OPEN_FRACTION:-0.5}" --server-pid "$SERVER_PID" \
  --json-out "$OUT/results.json" "$@" | tee "$OUT/results.txt"

LOADED_RSS=$(rss_kib)

# Memory under mixed load: the round trip, client_credentials, refresh and discovery in turn
# (closed loop, 8 workers, a quarter of each 20 s slice each) for SOAK seconds; RSS sampled
# every 5 s.
SOAK=${SOAK:-300}
SOAK_LINE=
if [ "$SOAK" -gt 0 ]; then
  echo "== memory: $SOAK s of mixed load" >&2
  : >"$OUT/rss.tsv"
  (
    start=$(date +%s)
    while kill -0 "$SERVER_PID" 2>/dev/null; do
      echo "$(( $(date +%s) - start ))	$(rss_kib)" >>"$OUT/rss.tsv"
      sleep 5
    done
  ) &
  SAMPLER=$!
  end=$(( $(date +%s) + SOAK ))
  while [ "$(date +%s)" -lt "$end" ]; do
    left=$(( end - $(date +%s) ))
    [ "$left" -gt 20 ] && left=20
    [ "$left" -lt 1 ] && break
    "$LOAD" --threads "${THREADS:-1}" run --base-url "$BASE" \
      --sso-client "$WORK/sso.json" "${CC_ARGS[@]}" --scenario sso,client-credentials,refresh,discovery \
      --concurrency 8 --sessions 8 --duration "$(awk -v l="$left" 'BEGIN {print l / 4}')" --warmup 0 \
      --argon2-seconds 0 >/dev/null 2>&1 || true
  done
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  SOAK_LINE=$(awk -v soak="$SOAK" '
    { t[NR] = $1; r[NR] = $2; if ($2 > max) max = $2 }
    END {
      at = 0.4 * soak; a = r[1]
      for (i = 1; i <= NR; i++) if (t[i] <= at) a = r[i]
      printf "RSS under mixed load: at %d s %d MiB, at %d s %d MiB, max %d MiB (growth over the last 60 %%: %+d MiB)",
        at, a / 1024, t[NR], r[NR] / 1024, max / 1024, (r[NR] - a) / 1024
    }' "$OUT/rss.tsv")
fi
{
  echo "setup: $SETUP"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "idle RSS of idp before load: $((IDLE_RSS / 1024)) MiB ($IDLE_RSS KiB)"
  echo "RSS of idp after load:       $((LOADED_RSS / 1024)) MiB ($LOADED_RSS KiB)"
  if [ -n "$SOAK_LINE" ]; then echo "$SOAK_LINE"; fi
} | tee -a "$OUT/results.txt"
if grep -qiE 'error|panic' "$WORK/server.log"; then
  echo "server log (warnings and errors):" >&2
  tail -n 20 "$WORK/server.log" >&2
fi
echo "results: $OUT" >&2
