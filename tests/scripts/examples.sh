#!/usr/bin/env bash
# integration_examples: runs every client example against the running local stack (topics and
# database of its own) through bw-api and one usage worker of this build, and asserts what
# each prints.   examples.sh <source dir> <bw-api> <bw-usage-worker>
set -euo pipefail
SRC="$1" API_BIN="$2" WORKER_BIN="$3"
PY=/usr/bin/python3
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}" MONGO_URI="${MONGO_URI:-mongodb://127.0.0.1:27017}"
run="ex_$$_$RANDOM"
export USAGE_TOPIC="$run.usage" RESULTS_TOPIC="$run.results" MONGO_DB="db_$run"
export BW_API_KEYS="example-key-0123456789abcdef" BW_API_KEY="example-key-0123456789abcdef"
tmp="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    "$PY" -c 'import os, pymongo; pymongo.MongoClient(os.environ["MONGO_URI"]).drop_database(os.environ["MONGO_DB"])' || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "examples: FAIL: $*" >&2; for f in "$tmp"/*.log; do echo "== $f" >&2; tail -20 "$f" >&2; done; exit 1; }

"$PY" - <<'PY'
import os
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": os.environ["KAFKA_BROKERS"]})
t = os.environ["USAGE_TOPIC"]
fs = a.create_topics([NewTopic(t, 2, 1), NewTopic(t + ".dlq", 1, 1), NewTopic(os.environ["RESULTS_TOPIC"], 1, 1)])
for f in fs.values():
    f.result(30)
PY
port="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export BW_API_URL="http://127.0.0.1:$port"
API_PORT="$port" API_BIND=127.0.0.1 "$API_BIN" >"$tmp/api.log" 2>&1 &
pids+=($!)
USAGE_GROUP_ID="$run.group" "$WORKER_BIN" >"$tmp/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "$BW_API_URL/" && break; sleep 0.1; done

org="ex-org-$run"   # never seen: the free grant of 100 SPUs
# http: the pre-check at and past the boundary, then publishing.
out="$(bash "$SRC/examples/http/precheck.sh" "$org" 100)" || fail "precheck 100: $out"
echo "http precheck: $out"
[[ "$(jq -r '.allowed, .available, .shortfall' <<<"$out" | tr '\n' ' ')" == "true 100 0 " ]] || fail "precheck 100: $out"
rc=0; out="$(bash "$SRC/examples/http/precheck.sh" "$org" 101)" || rc=$?
[[ $rc == 3 && "$(jq -r '.allowed, .shortfall' <<<"$out" | tr '\n' ' ')" == "false 1 " ]] || fail "precheck 101 (rc $rc): $out"
out="$(bash "$SRC/examples/http/publish_usage.sh" "$org" "ex-http-1" 7)" || fail "publish: $out"
echo "http publish: $out"
[[ "$(jq -r '.accepted, .event_ids[0]' <<<"$out" | tr '\n' ' ')" == "1 ex-http-1 " ]] || fail "publish: $out"
# The worker applies it asynchronously: wait for 93 left before the next client reads.
for _ in $(seq 300); do
    left="$(curl -s -H "Authorization: Bearer $BW_API_KEY" "$BW_API_URL/v1/orgs/$org/balance" | jq -r .balances.total_remaining)"
    [[ "$left" == 93 ]] && break
    sleep 0.1
done
[[ "$left" == 93 ]] || fail "the http example's event was not applied (total_remaining $left)"

# node: pre-check, publish, wait for the worker: 100 - 7 - 5 = 88 left.
out="$(node "$SRC/examples/node/client.mjs" "$org" 5 2>&1)" || fail "node: $out"
echo "node: $out"
grep -q '"step":"precheck","allowed":true' <<<"$out" || fail "node precheck: $out"
grep -q '"step":"published","accepted":1' <<<"$out" || fail "node publish: $out"
grep -q '"step":"applied","total_remaining":88' <<<"$out" || fail "node applied: $out"
out="$(node "$SRC/examples/node/client.mjs" "$org" 1000 2>&1)" || fail "node refused: $out"
grep -q '"step":"refused","status":402' <<<"$out" || fail "node refused: $out"

# python: idempotent producer, the same event_id twice: applied once, duplicate once.
out="$("$PY" "$SRC/examples/python/publish_usage.py" "$org" 3 2>&1)" || fail "python: $out"
echo "python: $out"
grep -q '"statuses": \["applied", "duplicate"\]' <<<"$out" || fail "python: $out"
grep -q '"status": "applied", "spus": 3, "breakdown": {"from_subscription": 0, "from_purchased": 0, "from_granted": 3, "from_paid": 0}, "total_remaining": 85' <<<"$out" \
    || fail "python result: $out"
echo "examples: 3 passed, 0 failed"
