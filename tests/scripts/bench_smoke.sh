#!/usr/bin/env bash
# integration_bench_smoke: bench/bench.py in BENCH_QUICK mode against the running local stack,
# with the binaries of this build; then the CSV is checked (columns, scenarios, counts).
#   bench_smoke.sh <source dir> <build dir>
set -euo pipefail
SRC="$1"
BUILD="$2"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

export BENCH_QUICK=1 BENCH_EVENTS="${BENCH_EVENTS:-3000}" BENCH_ORGS="${BENCH_ORGS:-100}"
export BENCH_BASELINE_EVENTS=300 BENCH_BUILD="$BUILD" BENCH_CSV="$out/bench.csv" BENCH_LOGDIR="$out/logs"
/usr/bin/python3 "$SRC/bench/bench.py"

/usr/bin/python3 - "$out/bench.csv" <<'PY'
import csv, sys
need = ["scenario", "impl", "procs", "batch", "orgs", "events", "rate_target", "events_per_s",
        "ir_per_event", "ir_batch_per_event", "p50_ms", "p99_ms", "max_ms", "p99_all_ms", "db_round_trips_per_event", "cpu_us_per_event",
        "peak_rss_mb", "store_cpu_us_per_event", "broker_cpu_us_per_event", "applied", "duplicates",
        "version_misses", "results", "note"]
with open(sys.argv[1], newline="") as f:
    r = csv.DictReader(f)
    missing = [c for c in need if c not in (r.fieldnames or [])]
    assert not missing, "CSV lacks columns %s" % missing
    rows = {row["scenario"]: row for row in r}
want = {"worker_1p", "worker_2p", "baseline_python", "ceiling_pipe", "ceiling_store"}
assert want <= set(rows), "CSV lacks scenarios %s" % (want - set(rows))
for name in ("worker_1p", "worker_2p", "baseline_python"):
    row = rows[name]
    ev = int(row["events"])
    assert int(row["results"]) == ev, "%s: %s results for %d events" % (name, row["results"], ev)
    assert int(row["applied"]) + int(row["duplicates"]) == ev, "%s: applied+duplicates" % name
    assert int(row["duplicates"]) > 0, "%s: the stream has re-sends, none seen" % name
    assert float(row["events_per_s"]) > 0 and float(row["p99_ms"]) >= float(row["p50_ms"]) >= 0
    assert float(row["db_round_trips_per_event"]) > 0 and float(row["cpu_us_per_event"]) > 0
for name in ("ceiling_pipe", "ceiling_store"):
    assert float(rows[name]["events_per_s"]) > 0, "%s: no rate" % name
print("bench smoke: CSV ok (%d rows)" % len(rows))
PY
