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
# benchmark takes a core from it; idp-load flags runs that were disturbed anyway).
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

echo "== build (release)" >&2
cargo build --release -q -p idp -p loadtest
IDP=$ROOT/target/release/idp
LOAD=$ROOT/target/release/idp-load

WORK=$(mktemp -d "${TMPDIR:-/tmp}/idp-load.XXXXXX")
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
SERVER_PID=
DB_NAME=
KEY_PREFIX=

cleanup() {
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

echo "== load: concurrency ${CONCURRENCY:-32}, ${DURATION:-10} s per run after ${WARMUP:-2} s warm-up" >&2
"$LOAD" --threads "${THREADS:-1}" run --base-url "$BASE" \
  --sso-client "$WORK/sso.json" "${CC_ARGS[@]}" \
  --concurrency "${CONCURRENCY:-32}" --duration "${DURATION:-10}" --warmup "${WARMUP:-2}" \
  --open-fraction "${OPEN_FRACTION:-0.5}" --server-pid "$SERVER_PID" \
  --json-out "$OUT/results.json" "$@" | tee "$OUT/results.txt"

LOADED_RSS=$(rss_kib)
{
  echo "setup: $SETUP"
  echo "idle RSS of idp before load: $((IDLE_RSS / 1024)) MiB ($IDLE_RSS KiB)"
  echo "RSS of idp after load:       $((LOADED_RSS / 1024)) MiB ($LOADED_RSS KiB)"
} | tee -a "$OUT/results.txt"
if grep -qiE 'error|panic' "$WORK/server.log"; then
  echo "server log (warnings and errors):" >&2
  tail -n 20 "$WORK/server.log" >&2
fi
echo "results: $OUT" >&2
