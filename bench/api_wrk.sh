#!/usr/bin/env bash
# bw-api on loopback with wrk (docs/PERFORMANCE.md "bw-api"): balance reads/s (cached and straight
# from MongoDB) and usage events/s (1 and 100 events per request), against the running local
# stack (KAFKA_BROKERS / MONGO_URI, e.g. `eval "$(deploy/local/stack env)"`), with a topic and a
# database of its own, removed at the end. Prints one line per scenario.
#   bench/api_wrk.sh [build dir]      BENCH_API_SECONDS (10), BENCH_API_CONNS (32)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${1:-$HERE/../build}"
SECS="${BENCH_API_SECONDS:-10}" CONNS="${BENCH_API_CONNS:-32}"
PY=/usr/bin/python3
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}" MONGO_URI="${MONGO_URI:-mongodb://127.0.0.1:27017}"
run="apibench_$$"
export MONGO_DB="db_$run" USAGE_TOPIC="$run.usage" LOG_LEVEL=warn
export BW_API_KEYS="bench-key-0123456789abcdef"
tmp="$(mktemp -d)" pid=""
cleanup() {
    [[ -n "$pid" ]] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
    "$PY" - <<'PY' || true
import os, pymongo
from confluent_kafka.admin import AdminClient
pymongo.MongoClient(os.environ["MONGO_URI"]).drop_database(os.environ["MONGO_DB"])
admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BROKERS"]})
for f in admin.delete_topics([os.environ["USAGE_TOPIC"]]).values():
    f.result(30)
PY
    rm -rf "$tmp"
}
trap cleanup EXIT

"$PY" - "$tmp" <<'PY'
import json, os, sys
import pymongo
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BROKERS"]})
for f in admin.create_topics([NewTopic(os.environ["USAGE_TOPIC"], 4, 1)]).values():
    f.result(30)
db = pymongo.MongoClient(os.environ["MONGO_URI"])[os.environ["MONGO_DB"]]
db.payments_customers.insert_one({"org_id": "bench-org", "subscription_type": "team",
    "subscription_spu_allowance": 1000, "subscription_spus_used": 10, "purchased_credits": 50,
    "purchased_credits_used": 0, "granted_credits": 100, "granted_credits_used": 100, "balance_version": 3})
def ev(i):
    return {"event_id": "bench-%d" % i, "org_id": "bench-org-%d" % (i % 50), "spus": 1,
            "operation": "parse", "source": "wrk", "timestamp": "2026-03-01T10:00:00Z"}
for n in (1, 100):
    body = json.dumps(ev(0)) if n == 1 else json.dumps([ev(i) for i in range(n)])
    with open("%s/post%d.lua" % (sys.argv[1], n), "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n'
                'wrk.headers["Authorization"] = "Bearer %s"\n' % (json.dumps(body), os.environ["BW_API_KEYS"]))
PY

start_api() {
    [[ -n "$pid" ]] && { kill "$pid"; wait "$pid" 2>/dev/null || true; }
    port="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    API_PORT="$port" API_BALANCE_CACHE_MS="$1" "$BUILD/workers/api/bw-api" >>"$tmp/api.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && return; sleep 0.1; done
    echo "bw-api did not start" >&2; cat "$tmp/api.log" >&2; exit 1
}
rate() { grep -E '^Requests/sec' | awk '{print $2}'; }
report() { # name, requests/s, events per request, non-2xx line
    awk -v n="$1" -v r="$2" -v e="$3" -v l="$(cut -d' ' -f1-3 /proc/loadavg)" -v x="${4:+   $4}" \
        'BEGIN { printf "%-36s %9.0f req/s %9.0f events/s   load %s%s\n", n, r, r * e, l, x }'
}
auth="Authorization: Bearer $BW_API_KEYS"
for cache in 200 0; do
    start_api "$cache"
    out="$(wrk -t2 -c"$CONNS" -d"${SECS}s" -H "$auth" "http://127.0.0.1:$port/v1/orgs/bench-org/balance?spus=5")"
    report "balance?spus=5 (cache ${cache} ms)" "$(rate <<<"$out")" 0 "$(grep -E 'Non-2xx' <<<"$out" || true)"
done
start_api 200
for n in 1 100; do
    out="$(wrk -t2 -c16 -d"${SECS}s" -s "$tmp/post$n.lua" "http://127.0.0.1:$port/v1/usage")"
    report "POST /v1/usage, $n events/request" "$(rate <<<"$out")" "$n" "$(grep -E 'Non-2xx' <<<"$out" || true)"
done
