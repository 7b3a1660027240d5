"""The `callgrind` group of bench/bench.py: instructions per usage event, counted by valgrind's
callgrind over a fixed stream (stable on a noisy, shared machine, unlike events/s). Started by
`bench/callgrind` (alone) or `bench/run` (with the other groups); see docs/PERFORMANCE.md.

1. `bw-bench-loadgen produce` writes the fixed stream (BENCH_CALLGRIND_EVENTS, default 20,000
   events over BENCH_CALLGRIND_ORGS = 10,000 orgs, Zipf 1.1, 5 % re-sends, seed 42: the same
   bytes every time, except bench_ts_us) to a fresh topic of ONE partition
   (BENCH_CALLGRIND_PARTITIONS), BEFORE the worker starts.
2. `bw-usage-worker` (the bench build: RelWithDebInfo, no sanitizers) runs under
   `valgrind --tool=callgrind --separate-threads=no` with a fresh group and database until
   IDLE_EXIT_MS after the last message; the checks are bench.py's (exit 0, msgs_in = applied +
   duplicates = events, a result on the results topic per event, the SPUs charged in
   payments_customers = the stream's unique SPUs). The batches are the same on every run:
   events 0-499, 500-999, ... The worker gets BATCH_WAIT_MS=10000 (under valgrind, 500 polls
   can outlast the default 20 ms, which cut batches at timing-dependent places) and
   max.partition.fetch.bytes = 64 MB (the whole partition in one fetch, so the local queue
   never runs dry mid-batch); with 12 partitions the batches would mix partitions in the order
   their fetches arrive, which moves the count by 1-2 % from run to run.
3. The same worker under callgrind on an empty topic (0 events: start-up, group join, idle
   exit, shutdown), and the figures:
     ir_per_event        (Ir of the run with events - Ir of the empty run) / events, every
                         thread (librdkafka's too): the whole process net of start-up. The
                         figure to compare across changes to the worker's loop structure.
     ir_batch_per_event  inclusive Ir of the batch handler / events (bw_usage_process_batch, or
                         since the pipelined loop bw_usage_batch_apply + _publish + _settle)
                         (parse, reads, writes, records, result JSON, publish and flush wait).
                         Taken from the same full-collection run (callgrind's inclusive cost of
                         the function), which equals what --toggle-collect=bw_usage_process_batch
                         would count; no toggle, so one run gives both figures. If a change
                         moves work out of the handler (e.g. publish of batch N overlapped with
                         batch N+1), this figure drops by that work and ir_per_event does not.
   The top inclusive functions (callgrind_annotate --inclusive=yes) and the top self costs go
   to <csv>.callgrind.txt, the raw callgrind.out files to the logs directory.
"""
import os
import re
import shutil
import subprocess
import time

# The batch handler: one function before the pipelined loop (issue 15), its three steps after
# (the loop calls each; none calls another, so their inclusive costs add up).
HANDLERS = (("bw_usage_process_batch",),
            ("bw_usage_batch_apply", "bw_usage_batch_publish", "bw_usage_batch_settle"))
TOP = 25
SELF_TOP = 15


def _totals(path):
    """Total Ir of a callgrind.out file (its `totals:` or `summary:` line)."""
    with open(path) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in %s" % path)


def _annotate(path, inclusive):
    """callgrind_annotate (--inclusive=yes or self cost): [(Ir, name)], largest first.
    PROGRAM TOTALS and the frames above main are left out."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=" + ("yes" if inclusive else "no"),
                          "--threshold=100", "--auto=no", path],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    rows, seen = [], set()
    for line in out.stdout.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([\d.\s]+%\)\s+)?(\S.*)$", line)
        if not m or "file:function" in line or "PROGRAM TOTALS" in line:
            continue
        ir, name = int(m.group(1).replace(",", "")), m.group(2).strip()
        if ("(below main)" in name or "__libc_start" in name or
                (name.startswith("???:0x") and "/ld-linux" in name)):
            continue
        # inclusive lists name a function twice (by absolute and by relative source path)
        key = (ir, _func(name))
        if name.startswith("=>") or key in seen:
            continue
        seen.add(key)
        rows.append((ir, name))
    return rows


def _short(b, name):
    """name with the repository's path and the objects' directories left out."""
    name = name.replace(b.REPO + "/", "")
    return re.sub(r"\[/\S*/([^/\]]+)\]$", r"[\1]", name)


def _func(name):
    """The function of a callgrind_annotate name "file:function [object]"."""
    return name.split(" [")[0].rsplit(":", 1)[-1]


def _inclusive(rows, func):
    return max([ir for ir, name in rows if _func(name) == func] or [0])


def _worker_run(b, name, events, orgs):
    """One callgrind run of the worker over a fresh topic holding `events` events (0: empty).
    Returns (callgrind.out path, the worker's metrics, the produce line, wall seconds)."""
    tag = "bench.%s.%s" % (b.RUN_ID, name)
    topic, results, group = tag + ".usage", tag + ".results", tag + ".group"
    db = ("bench_%s_%s" % (b.RUN_ID, name)).replace("-", "_").replace(".", "_")[:60]
    out = os.path.join(b.LOGDIR, "%s.callgrind.out" % name)
    parts = int(os.environ.get("BENCH_CALLGRIND_PARTITIONS", "1"))
    b.create_topics(topic, partitions=parts)
    b.create_topics(results)
    prod = {}
    try:
        if events:
            prod = b.loadgen("produce", "--topic", topic, "--prefix", "ev",
                             *b.gen_args(events, orgs))
            b.check(prod.get("rc") == 0 and prod.get("sent") == events,
                    "%s: produced %s of %d events" % (name, prod.get("sent"), events))
        env = b.worker_env(topic, results, group, db, 500)
        # Batches cut by count only (see the module's docstring): no wall-clock cut-off, and
        # the partition fetched whole.
        env["BATCH_WAIT_MS"] = "10000"
        env["RDKAFKA_MAX_PARTITION_FETCH_BYTES"] = str(64 << 20)
        argv = ["valgrind", "--tool=callgrind", "--separate-threads=no",
                "--callgrind-out-file=" + out] + \
            os.environ.get("BENCH_VALGRIND_OPTS", "").split() + [b.WORKER]
        b.log("%s: bw-usage-worker under callgrind, %d events of %d orgs" % (name, events, orgs))
        t0 = time.time()
        procs = b.Procs(name, [argv], env)
        codes = procs.wait_exit(timeout=3600)
        secs = time.time() - t0
        met = procs.metrics()
        b.check(codes == [0], "%s: exit codes %s (log %s)" % (name, codes, procs.logs))
        b.check(bool(met), "%s: no metrics final line" % name)
        b.check(met.get("msgs_in", 0) == events and
                met.get("applied", 0) + met.get("duplicates", 0) == events and
                met.get("results", 0) == events,
                "%s: msgs_in %s, applied %s + duplicates %s, results %s; %d events" %
                (name, met.get("msgs_in"), met.get("applied"), met.get("duplicates"),
                 met.get("results"), events))
        if events:
            cnt = b.loadgen("count", "--topic", results, "--events", events,
                            "--timeout-s", "30")
            b.check(cnt.get("rc") == 0, "%s: %s of %d results on the results topic" %
                    (name, cnt.get("messages"), events))
            charged = b.charged_spus(db)
            b.check(charged == prod.get("unique_spus"), "%s: balances charged %d SPUs, the "
                    "stream's unique events hold %s" % (name, charged, prod.get("unique_spus")))
    finally:
        b.mongo.drop_database(db)
        b.delete_topics(topic, results)
    return out, met, prod, secs


def run(b):
    """The callgrind scenario; b is the bench module (its helpers and settings). One row."""
    events = int(os.environ.get("BENCH_CALLGRIND_EVENTS", "1000" if b.QUICK else "20000"))
    orgs = int(os.environ.get("BENCH_CALLGRIND_ORGS", "10000"))
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        b.check(False, "callgrind: valgrind not installed (apt-get install valgrind)")
        return None
    os.makedirs(b.LOGDIR, exist_ok=True)
    out_n, met, prod, secs_n = _worker_run(b, "callgrind", events, orgs)
    out_0, _, _, secs_0 = _worker_run(b, "callgrind_empty", 0, orgs)
    ir_n, ir_0 = _totals(out_n), _totals(out_0)
    top = _annotate(out_n, True)
    own = _annotate(out_n, False)
    ir_batch, FUNC = 0, "the batch handler"
    for funcs in HANDLERS:
        ir = sum(_inclusive(top, f) for f in funcs)
        if ir > 0:
            ir_batch, FUNC = ir, " + ".join(funcs)
            break
    b.check(ir_batch > 0, "callgrind: no inclusive cost of the batch handler in %s" % out_n)
    net = ir_n - ir_0
    want_batches = -(-events // 500)
    r = b.row("callgrind", "worker under valgrind", 1, 500, orgs, events, 0, {}, met)
    # events/s, CPU and RSS under valgrind mean nothing
    r["events_per_s"] = r["cpu_us_per_event"] = r["peak_rss_mb"] = ""
    r["ir_per_event"] = round(net / events)
    r["ir_batch_per_event"] = round(ir_batch / events)
    r["note"] = ("callgrind: Ir %d with events - %d empty run; %s inclusive %d (%.0f %% of "
                 "the net); %.0f s + %.0f s under valgrind" %
                 (ir_n, ir_0, FUNC, ir_batch, 100.0 * ir_batch / net if net else 0, secs_n,
                  secs_0))
    lines = [
        "callgrind: bw-usage-worker, %d events (%d unique, %d re-sends) over %d orgs, Zipf 1.1, "
        "seed 42, batch 500" % (events, prod.get("unique_events", 0), prod.get("resends", 0),
                                orgs),
        "Ir whole process (every thread), run with events: %d" % ir_n,
        "Ir whole process, empty run (start-up, join, idle exit):  %d" % ir_0,
        "ir_per_event        (net of the empty run) / events:  %d" % r["ir_per_event"],
        "ir_batch_per_event  %s inclusive / events:  %d  (%.1f %% of the net)" %
        (FUNC, r["ir_batch_per_event"], 100.0 * ir_batch / net if net else 0),
        "batches %s (expected %d: %s), DB round trips %s" %
        (met.get("batches"), want_batches, "as expected" if met.get("batches") == want_batches
         else "OTHER BATCHES THAN USUAL: not comparable", met.get("db_round_trips")),
        "callgrind.out: %s (empty run: %s)" % (out_n, out_0),
        "",
        "top %d inclusive (callgrind_annotate --inclusive=yes), share of the run's total Ir "
        "and Ir per event:" % TOP,
    ]
    for ir, name in top[:TOP]:
        lines.append("%15d  %5.1f %%  %9.0f  %s" %
                     (ir, 100.0 * ir / ir_n, ir / events, _short(b, name)))
    lines += ["", "top %d self cost (callgrind_annotate, exclusive):" % SELF_TOP]
    for ir, name in own[:SELF_TOP]:
        lines.append("%15d  %5.1f %%  %9.0f  %s" %
                     (ir, 100.0 * ir / ir_n, ir / events, _short(b, name)))
    r["_report"] = "\n".join(lines) + "\n"
    b.log("callgrind: %d Ir per event (whole process, net), %d in %s" %
          (r["ir_per_event"], r["ir_batch_per_event"], FUNC))
    return r
