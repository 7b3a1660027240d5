#!/usr/bin/python3
"""Usage benchmark driver (called by bench/run after the build; see docs/PERFORMANCE.md).

Every scenario gets its own topics (12 partitions, like usage.events), results topic,
consumer group and database, all deleted afterwards. Prints a table and writes a CSV.

Environment: BENCH_EVENTS (200000), BENCH_ORGS (10000), BENCH_QUICK=1 (smoke: few thousand
events, few scenarios), BENCH_SWEEP_EVENTS (sweep size), BENCH_BASELINE_EVENTS (20000),
BENCH_BUILD (build dir), BENCH_CSV (output path), BENCH_LOGDIR (process logs),
BENCH_ONLY (comma list of scenario groups:
main,half,low,cidx,baseline,ceilings,batch,orgs,callgrind), BENCH_CALLGRIND_EVENTS (20000; 1000
in BENCH_QUICK, where the group is not run unless BENCH_ONLY names it), BENCH_CALLGRIND_ORGS
(10000), BENCH_CALLGRIND_PARTITIONS (1), BENCH_VALGRIND_OPTS (bench/callgrind_ir.py),
KAFKA_BROKERS, MONGO_URI.
"""
import csv
import json
import os
import subprocess
import sys
import time

from confluent_kafka.admin import AdminClient, NewTopic
import pymongo

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.environ.get("BENCH_BUILD", os.path.join(REPO, "build-bench"))
LOADGEN = os.path.join(BUILD, "bench", "bw-bench-loadgen")
WORKER = os.path.join(BUILD, "workers", "usage", "bw-usage-worker")
BASELINE = os.path.join(HERE, "baseline.py")
STORE_CEILING = os.path.join(HERE, "store_ceiling")
BROKERS = os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092")
MONGO_URI = os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017")
PARTITIONS = 12
IDLE_EXIT_MS = 3000
# With 2 processes the second member's join rebalances the group, which can take a consumer
# heartbeat (3 s) and more on a loaded machine: the first member, assigned everything, must not
# idle out meanwhile (the scenario then failed with "process exited before assignment").
IDLE_EXIT_MS_MULTI = 10000
# Half-load runs: events sent in the first seconds (the worker's first batch waits for
# producer metadata and connections) are left out of p50/p99; p99_all_ms has them.
HALF_WARMUP_S = 2

QUICK = os.environ.get("BENCH_QUICK") == "1"
EVENTS = int(os.environ.get("BENCH_EVENTS", "3000" if QUICK else "200000"))
ORGS = int(os.environ.get("BENCH_ORGS", "200" if QUICK else "10000"))
SWEEP_EVENTS = int(os.environ.get("BENCH_SWEEP_EVENTS", str(min(EVENTS, 50000))))
BASELINE_EVENTS = int(os.environ.get("BENCH_BASELINE_EVENTS", str(min(EVENTS, 20000))))
RUN_ID = time.strftime("%Y%m%d-%H%M%S") + "-" + str(os.getpid())
# Low-balance alerts of every scenario (the workers publish "exhausted" when overage starts).
ALERTS = "bench.%s.alerts" % RUN_ID
LOGDIR = os.environ.get("BENCH_LOGDIR") or os.path.join(HERE, "results", "logs-" + RUN_ID)

COLUMNS = ["scenario", "impl", "procs", "batch", "orgs", "events", "rate_target", "events_per_s",
           "ir_per_event", "ir_batch_per_event", "p50_ms", "p99_ms", "max_ms", "p99_all_ms", "db_round_trips_per_event", "cpu_us_per_event",
           "peak_rss_mb", "store_cpu_us_per_event", "broker_cpu_us_per_event", "applied", "duplicates", "version_misses", "results", "note"]

# Keys of the worker's `metrics final` line that become extra CSV columns, as they are (summed
# over the scenario's processes like the other counters); a scenario without them leaves the
# cells empty.
STAGE_PREFIX = "stage_"

admin = AdminClient({"bootstrap.servers": BROKERS})
mongo = pymongo.MongoClient(MONGO_URI, serverSelectionTimeoutMS=10000)


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def create_topics(*names, partitions=PARTITIONS):
    futs = admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    for f in futs.values():
        f.result(30)
    # wait until the metadata shows every partition with a leader
    deadline = time.time() + 30
    while time.time() < deadline:
        md = admin.list_topics(timeout=10)
        if all(n in md.topics and len(md.topics[n].partitions) == partitions and
               all(p.leader >= 0 for p in md.topics[n].partitions.values()) for n in names):
            return
        time.sleep(0.2)
    raise RuntimeError("topics not ready: %s" % (names,))


def delete_topics(*names):
    try:
        for f in admin.delete_topics(list(names)).values():
            f.result(30)
    except Exception as e:  # cleanup only: a failure here does not spoil the figures
        log("delete topics %s: %s" % (names, e))


def loadgen(*args):
    out = subprocess.run([LOADGEN] + [str(a) for a in args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    res = json.loads(line)
    res["rc"] = out.returncode
    if out.returncode != 0:
        log("loadgen %s exited %d: %s" % (args[0], out.returncode, out.stderr.strip()[-2000:]))
    return res


def gen_args(events, orgs):
    # BENCH_HEX_ORGS=1: org ids are ObjectId strings, so the worker also reads the backend's
    # organizations collection once per batch (its cost is measured against the default)
    return ["--events", events, "--orgs", orgs, "--dup", "0.05", "--zipf", "1.1",
            "--seed", "42", "--hex-orgs", os.environ.get("BENCH_HEX_ORGS", "0")]


class Procs:
    """Worker (or baseline) processes of one scenario, with their JSON-lines logs."""

    def __init__(self, name, argv_list, env):
        self.logs = []
        self.procs = []
        os.makedirs(LOGDIR, exist_ok=True)
        for i, argv in enumerate(argv_list):
            path = os.path.join(LOGDIR, "%s.%d.log" % (name, i))
            f = open(path, "w")
            self.procs.append(subprocess.Popen(argv, env=env, stdout=f, stderr=subprocess.STDOUT))
            self.logs.append(path)

    def lines(self, i):
        with open(self.logs[i]) as f:
            for line in f:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue

    def wait_assigned(self, timeout=60):
        """Until every process holds partitions and together they hold all of them."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            held = []
            for i in range(len(self.procs)):
                n = 0
                for j in self.lines(i):
                    m = j.get("msg", "")
                    if m.startswith("assigned "):
                        n = int(m.split()[1])
                    elif m.startswith("revoking "):
                        n = 0
                held.append(n)
            if all(h > 0 for h in held) and sum(held) == PARTITIONS:
                time.sleep(0.5)
                return
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError("process exited before assignment: see %s" % self.logs)
            time.sleep(0.1)
        raise RuntimeError("no full assignment within %d s: see %s" % (timeout, self.logs))

    def wait_exit(self, timeout=120):
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(timeout))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
        return codes

    def metrics(self):
        """Sums of the processes' `metrics final` counters; max of peak RSS."""
        total = {}
        for i in range(len(self.procs)):
            for j in self.lines(i):
                m = j.get("msg", "")
                if m.startswith("metrics final "):
                    d = json.loads(m[len("metrics final "):])
                    for k, v in d.items():
                        if not isinstance(v, (int, float)) or isinstance(v, bool):
                            total[k] = json.dumps(v)   # not a counter: the last one, as is
                        elif k == "max_rss_kb":
                            total[k] = max(total.get(k, 0), v)
                        else:
                            total[k] = total.get(k, 0) + v
        return total


def worker_env(topic, results, group, db, batch):
    env = dict(os.environ)
    env.update({"KAFKA_BROKERS": BROKERS, "MONGO_URI": MONGO_URI, "MONGO_DB": db,
                "USAGE_TOPIC": topic, "USAGE_GROUP_ID": group, "RESULTS_TOPIC": results,
                "ALERTS_TOPIC": ALERTS,
                "BATCH_MAX": str(batch), "IDLE_EXIT_MS": str(IDLE_EXIT_MS), "LOG_LEVEL": "info"})
    return env


def row(scenario, impl, procs, batch, orgs, events, rate, lg, met, note=""):
    msgs = met.get("msgs_in") or 0
    cpu = met.get("cpu_user_s", 0) + met.get("cpu_sys_s", 0)
    return {
        "scenario": scenario, "impl": impl, "procs": procs, "batch": batch, "orgs": orgs,
        "events": events, "rate_target": round(rate) if rate else "max",
        "events_per_s": round(lg.get("events_per_s", 0)),
        "ir_per_event": "", "ir_batch_per_event": "",
        "p50_ms": lg.get("p50_ms", ""), "p99_ms": lg.get("p99_ms", ""),
        "max_ms": lg.get("max_ms", ""), "p99_all_ms": lg.get("p99_all_ms", ""),
        "db_round_trips_per_event": round(met["db_round_trips"] / msgs, 4) if msgs else "",
        "cpu_us_per_event": round(cpu * 1e6 / msgs, 1) if msgs else "",
        "peak_rss_mb": round(met.get("max_rss_kb", 0) / 1024, 1) if met else "",
        "store_cpu_us_per_event": "", "broker_cpu_us_per_event": "",
        "applied": met.get("applied", ""), "duplicates": met.get("duplicates", ""),
        "version_misses": met.get("version_misses", ""), "results": lg.get("results", ""),
        "note": note,
        # the worker's per-stage figures (keys stage_*), when its metrics line has them
        **{k: v for k, v in met.items() if k.startswith(STAGE_PREFIX)},
    }


FAILURES = []
TICK = os.sysconf("SC_CLK_TCK")


def stack_cpu_s(role):
    """CPU seconds so far of the local stack's kafka or mongo JVM (None if unknown). Other
    users of the shared servers add to it: an upper bound of what the bench caused."""
    try:
        pid = open(os.path.join(os.environ.get("BW_STACK_DIR", os.path.join(REPO, ".stack")),
                                "run", role + ".pid")).read().strip()
        fields = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, ValueError, IndexError):
        return None


def check(ok, what):
    if not ok:
        FAILURES.append(what)
        log("FAILED: " + what)


def add_compound_index(db):
    """The unique {org_id, balance_version} index (docs/PERFORMANCE.md: without it the local
    mongo-java-server scans the collection for every conditional update)."""
    mongo[db]["payments_customers"].create_index([("org_id", 1), ("balance_version", 1)],
                                                 unique=True)


def charged_spus(db):
    total = 0
    for d in mongo[db]["payments_customers"].find(
            {}, {"subscription_spus_used": 1, "purchased_credits_used": 1,
                 "granted_credits_used": 1, "paid_spus_used": 1}):
        total += sum(int(d.get(k, 0)) for k in ("subscription_spus_used", "purchased_credits_used",
                                                 "granted_credits_used", "paid_spus_used"))
    return total


def run_pipeline(scenario, impl, nprocs=1, batch=500, orgs=ORGS, events=EVENTS, rate=0.0,
                 keep_topic=False, compound_index=False, extra_env=None, warmup_s=0):
    """One end-to-end run: fresh topics and DB, processes started and assigned, then the
    load generator produces and waits for every result."""
    tag = "bench.%s.%s" % (RUN_ID, scenario)
    topic, results, group, db = tag + ".usage", tag + ".results", tag + ".group", \
        ("bench_%s_%s" % (RUN_ID, scenario)).replace("-", "_").replace(".", "_")[:60]
    create_topics(topic, results)
    if compound_index:
        add_compound_index(db)
    env = worker_env(topic, results, group, db, batch)
    if nprocs > 1:
        env["IDLE_EXIT_MS"] = str(IDLE_EXIT_MS_MULTI)
    env.update(extra_env or {})
    argv = [[WORKER]] * nprocs if impl == "worker" else [["/usr/bin/python3", BASELINE]]
    log("%s: %s x%d, batch %d, %d orgs, %d events, rate %s" %
        (scenario, impl, nprocs, batch, orgs, events, round(rate) if rate else "max"))
    cpu0 = {r: stack_cpu_s(r) for r in ("mongo", "kafka")}
    try:
        procs = Procs(scenario, argv, env)
        try:
            procs.wait_assigned()
            lg = loadgen("run", "--topic", topic, "--results", results, "--prefix", "ev",
                         "--rate", rate, "--warmup-s", warmup_s, "--timeout-s", "120",
                         *gen_args(events, orgs))
        finally:
            codes = procs.wait_exit()
    except BaseException:
        mongo.drop_database(db)
        delete_topics(topic, results)
        raise
    met = procs.metrics()
    check(lg.get("rc") == 0, "%s: loadgen got %s of %d results" %
          (scenario, lg.get("results"), events))
    check(all(c == 0 for c in codes), "%s: exit codes %s (logs %s)" % (scenario, codes,
                                                                       procs.logs))
    check(bool(met), "%s: no metrics final line" % scenario)
    if met:
        check(met.get("msgs_in") == events, "%s: msgs_in %s != %d" %
              (scenario, met.get("msgs_in"), events))
        check(met.get("applied", 0) + met.get("duplicates", 0) == events,
              "%s: applied+duplicates %s != %d" %
              (scenario, met.get("applied", 0) + met.get("duplicates", 0), events))
    check(lg.get("conflict", 0) == 0 and lg.get("rejected", 0) == 0 and
          lg.get("other_status", 0) == 0, "%s: unexpected statuses %s" % (scenario, lg))
    stack_cpu = {}
    for r in ("mongo", "kafka"):
        now = stack_cpu_s(r)
        if now is not None and cpu0[r] is not None and events:
            stack_cpu[r] = round((now - cpu0[r]) * 1e6 / events, 1)
    if lg.get("results"):
        charged = charged_spus(db)
        check(charged == lg.get("unique_spus"), "%s: balances charged %d SPUs, the stream's "
              "unique events hold %s" % (scenario, charged, lg.get("unique_spus")))
    mongo.drop_database(db)
    if not keep_topic:
        delete_topics(topic, results)
    r = row(scenario, impl, nprocs, batch, orgs, events, rate, lg, met)
    r["store_cpu_us_per_event"] = stack_cpu.get("mongo", "")
    r["broker_cpu_us_per_event"] = stack_cpu.get("kafka", "")
    return r, topic, results


def ceiling_pipe(topic, events):
    log("ceiling_pipe: %d messages of %s" % (events, topic))
    lg = loadgen("count", "--topic", topic, "--events", events, "--timeout-s", "30")
    check(lg.get("rc") == 0, "ceiling_pipe: %s of %d messages" % (lg.get("messages"), events))
    r = row("ceiling_pipe", "librdkafka consumer, no processing", 1, "", ORGS, events, 0, lg, {})
    r["note"] = "raw consume rate of the 1-process topic"
    return r


def ceiling_store(events, batch=500, compound_index=False, records=False):
    name = "ceiling_store" + ("_records" if records else "") + ("_cidx" if compound_index else "")
    db = ("bench_%s_%s" % (RUN_ID, name)).replace("-", "_")
    log("%s: %d events, bulks per %d" % (name, events, batch))
    out = subprocess.run([STORE_CEILING, "--db", db, "--batch", str(batch),
                          "--compound-index", "1" if compound_index else "0",
                          "--records", "1" if records else "0"] +
                         [str(a) for a in gen_args(events, ORGS)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lg = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}
    lg["rc"] = out.returncode
    check(out.returncode == 0, "%s: exit %d %s" % (name, out.returncode, out.stderr[-500:]))
    mongo.drop_database(db)
    r = row(name, "bulk conditional updates", 1, batch, ORGS, events, 0, lg, {})
    r["note"] = "%s updates in %s bulks (%s updates/s)%s%s" % (
        lg.get("updates"), lg.get("bulks"), round(lg.get("updates_per_s", 0)),
        " + %s usage records" % lg.get("records") if records else "",
        "; + unique {org_id, balance_version} index" if compound_index else "")
    return r


def main():
    for path in (LOADGEN, WORKER):
        if not os.access(path, os.X_OK):
            sys.exit("bench: %s missing: run bench/run (it builds)" % path)
    only = os.environ.get("BENCH_ONLY")
    groups = (only or "main,half,low,baseline,ceilings,batch,orgs,callgrind").split(",")
    if QUICK and not only:
        groups = [g for g in groups if g in ("main", "half", "baseline", "ceilings")]
    rows = []
    t0 = time.time()
    create_topics(ALERTS)
    try:
        return run_groups(groups, rows, t0)
    finally:
        delete_topics(ALERTS)


def run_groups(groups, rows, t0):
    if "main" in groups:
        r1, topic1, res1 = run_pipeline("worker_1p", "worker", 1, keep_topic=True)
        rows.append(r1)
        if "ceilings" in groups:
            rows.append(ceiling_pipe(topic1, EVENTS))
        delete_topics(topic1, res1)
        rows.append(run_pipeline("worker_2p", "worker", 2)[0])
        if "half" in groups and r1["events_per_s"]:
            rate = r1["events_per_s"] / 2
            n = int(min(EVENTS, max(2000, rate * 20)))
            r = run_pipeline("worker_1p_half_load", "worker", 1, events=n, rate=rate,
                             warmup_s=HALF_WARMUP_S)[0]
            r["note"] = "half of worker_1p's events/s"
            rows.append(r)
    if "low" in groups:
        # Latency at a light, fixed load (the machine's 2 cores are shared by the broker, the
        # database server, the load generator and the worker: at half of the maximum rate
        # they are close to saturation and queueing dominates the latency).
        rate = float(os.environ.get("BENCH_LOW_RATE", "1000"))
        n = int(min(EVENTS, max(2000, rate * 20)))
        r = run_pipeline("worker_1p_low_load", "worker", 1, events=n, rate=rate,
                         warmup_s=HALF_WARMUP_S)[0]
        r["note"] = "fixed light load (BENCH_LOW_RATE)"
        rows.append(r)
    if "cidx" in groups:
        r = run_pipeline("worker_1p_cidx", "worker", 1, compound_index=True)[0]
        r["note"] = "+ unique {org_id, balance_version} index"
        rows.append(r)
        r = run_pipeline("worker_2p_cidx", "worker", 2, compound_index=True)[0]
        r["note"] = "+ unique {org_id, balance_version} index"
        rows.append(r)
        if "half" in groups and rows[-2]["events_per_s"]:
            rate = rows[-2]["events_per_s"] / 2
            n = int(min(EVENTS, max(2000, rate * 20)))
            r = run_pipeline("worker_1p_cidx_half_load", "worker", 1, events=n, rate=rate,
                             compound_index=True, warmup_s=HALF_WARMUP_S)[0]
            r["note"] = "half of worker_1p_cidx's events/s; + compound index"
            rows.append(r)
            r = run_pipeline("worker_1p_cidx_half_load_wait5", "worker", 1, events=n,
                             rate=rate, compound_index=True, warmup_s=HALF_WARMUP_S,
                             extra_env={"BATCH_WAIT_MS": "5"})[0]
            r["note"] = "as worker_1p_cidx_half_load with BATCH_WAIT_MS=5"
            rows.append(r)
    if "ceilings" in groups:
        rows.append(ceiling_store(EVENTS))
        rows.append(ceiling_store(EVENTS, records=True))
        if "cidx" in groups:
            rows.append(ceiling_store(EVENTS, compound_index=True))
            rows.append(ceiling_store(EVENTS, compound_index=True, records=True))
    if "baseline" in groups:
        r = run_pipeline("baseline_python", "python per-event", 1, batch=1,
                         events=BASELINE_EVENTS)[0]
        r["note"] = "3 round trips + commit per event; first %d events of the same stream" % \
            BASELINE_EVENTS
        rows.append(r)
    if "batch" in groups:
        for b in (1, 50, 500, 2000):
            n = min(SWEEP_EVENTS, 5000) if b == 1 else SWEEP_EVENTS
            rows.append(run_pipeline("batch_%d" % b, "worker", 1, batch=b, events=n)[0])
    if "orgs" in groups:
        for m in (100, 10000, 1000000):
            rows.append(run_pipeline("orgs_%d" % m, "worker", 1, orgs=m, events=SWEEP_EVENTS)[0])
    if "callgrind" in groups:
        import callgrind_ir
        r = callgrind_ir.run(sys.modules[__name__])
        if r:
            rows.append(r)

    csv_path = os.environ.get("BENCH_CSV") or os.path.join(HERE, "results", RUN_ID + ".csv")
    os.makedirs(os.path.dirname(csv_path), exist_ok=True)
    reports = [r.pop("_report") for r in rows if "_report" in r]
    if reports:
        with open(os.path.splitext(csv_path)[0] + ".callgrind.txt", "w") as f:
            f.write("".join(reports))
    stages = sorted({k for r in rows for k in r if k.startswith(STAGE_PREFIX)})
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS + stages, restval="")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    show = ["scenario", "procs", "batch", "orgs", "events", "rate_target", "events_per_s",
            "ir_per_event", "p50_ms", "p99_ms", "p99_all_ms", "db_round_trips_per_event", "cpu_us_per_event", "peak_rss_mb",
            "store_cpu_us_per_event", "broker_cpu_us_per_event"]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in show]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(show, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(r[c]).ljust(w) for c, w in zip(show, widths)) + " |")
    for rep in reports:
        print(rep)
    print("csv: %s  (logs: %s, %.0f s)" % (csv_path, LOGDIR, time.time() - t0))
    if FAILURES:
        print("bench: %d problem(s):\n  %s" % (len(FAILURES), "\n  ".join(FAILURES)),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
