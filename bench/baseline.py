#!/usr/bin/python3
"""Per-event baseline for the usage benchmark: what a straightforward Python integration does.

For each event, one at a time: read the org's balances (1 round trip), run the waterfall,
insert the usage record (2; a duplicate key means "already charged": answer duplicate, skip
the balance write), write the balances (3), publish a small result, commit the offset
synchronously. Same env names as bw-usage-worker (USAGE_TOPIC, USAGE_GROUP_ID, RESULTS_TOPIC,
MONGO_DB, IDLE_EXIT_MS, FREE_GRANT_SPUS, KAFKA_BROKERS, MONGO_URI) and the same JSON log lines
the bench reads ("assigned N partitions", "metrics final {...}").
Run with Debian's /usr/bin/python3 (python3-confluent-kafka, python3-pymongo).
"""
import datetime
import json
import os
import resource
import sys
import time

from confluent_kafka import Consumer, Producer
import pymongo
from pymongo.errors import DuplicateKeyError

ENV = os.environ.get
BUCKETS = ("subscription", "purchased", "granted")
CAPS = {"subscription": ("subscription_spu_allowance", "subscription_spus_used"),
        "purchased": ("purchased_credits", "purchased_credits_used"),
        "granted": ("granted_credits", "granted_credits_used")}


def log(level, msg):
    print(json.dumps({"time": datetime.datetime.utcnow().isoformat() + "Z", "level": level,
                      "worker": "usage-baseline", "msg": msg}), file=sys.stderr, flush=True)


def main():
    free_grant = int(ENV("FREE_GRANT_SPUS", "100"))
    idle_exit = int(ENV("IDLE_EXIT_MS", "0")) / 1000.0
    results_topic = ENV("RESULTS_TOPIC", "billing.results")
    db = pymongo.MongoClient(ENV("MONGO_URI", "mongodb://127.0.0.1:27017"))[ENV("MONGO_DB",
                                                                               "billing")]
    customers, records = db["payments_customers"], db["payments_usage_records"]
    customers.create_index("org_id", unique=True)
    records.create_index("event_id", unique=True)
    producer = Producer({"bootstrap.servers": ENV("KAFKA_BROKERS", "127.0.0.1:9092"),
                         "linger.ms": 2})
    consumer = Consumer({"bootstrap.servers": ENV("KAFKA_BROKERS", "127.0.0.1:9092"),
                         "group.id": ENV("USAGE_GROUP_ID", "usage-baseline"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    m = {"msgs_in": 0, "batches": 0, "db_round_trips": 0, "applied": 0, "duplicates": 0,
         "rejected": 0, "version_misses": 0}

    def on_assign(c, parts):
        log("info", "assigned %d partitions" % len(parts))
        nonlocal last
        last = time.monotonic()

    def on_revoke(c, parts):
        log("info", "revoking %d partitions" % len(parts))

    last = time.monotonic()
    consumer.subscribe([ENV("USAGE_TOPIC", "usage.events")], on_assign=on_assign,
                       on_revoke=on_revoke)
    while True:
        msg = consumer.poll(0.1)
        if msg is None:
            if idle_exit and time.monotonic() - last >= idle_exit:
                break
            continue
        if msg.error():
            log("warn", "consume: %s" % msg.error())
            continue
        last = time.monotonic()
        m["msgs_in"] += 1
        m["batches"] += 1
        try:
            ev = json.loads(msg.value())
            org_id, spus = ev["org_id"], int(ev["spus"])
        except (ValueError, KeyError, TypeError):
            m["rejected"] += 1
            consumer.commit(message=msg, asynchronous=False)
            continue
        doc = customers.find_one({"org_id": org_id}) or {}
        m["db_round_trips"] += 1
        bal = {f: int(doc.get(f, 0)) for pair in CAPS.values() for f in pair}
        if not doc:
            bal["granted_credits"] = free_grant
        left, bd = spus, {}
        for b in BUCKETS:
            cap, used = CAPS[b]
            take = min(left, max(0, bal[cap] - bal[used]))
            bal[used] += take
            bd["from_" + b] = take
            left -= take
        bd["from_paid"] = left
        paid = int(doc.get("paid_spus_used", 0)) + left
        status = "insufficient_credits" if left else "applied"
        rec = dict(ev)
        rec.update(bd)
        rec.update({"status": status, "processed_at": datetime.datetime.utcnow()})
        try:
            records.insert_one(rec)
            m["db_round_trips"] += 1
            customers.update_one(
                {"org_id": org_id},
                {"$set": {"subscription_spus_used": bal["subscription_spus_used"],
                          "purchased_credits_used": bal["purchased_credits_used"],
                          "granted_credits_used": bal["granted_credits_used"],
                          "paid_spus_used": paid,
                          "updated_at": datetime.datetime.utcnow()},
                 "$inc": {"balance_version": 1},
                 "$setOnInsert": {"granted_credits": bal["granted_credits"],
                                  "purchased_credits": 0, "subscription_spu_allowance": 0,
                                  "subscription_type": "none"}},
                upsert=True)
            m["db_round_trips"] += 1
            m["applied"] += 1
        except DuplicateKeyError:
            m["db_round_trips"] += 1
            m["duplicates"] += 1
            status = "duplicate"
        producer.produce(results_topic, key=org_id,
                         value=json.dumps({"event_id": ev.get("event_id"), "org_id": org_id,
                                           "status": status, "spus": spus, "breakdown": bd}))
        producer.poll(0)
        consumer.commit(message=msg, asynchronous=False)
    producer.flush(30)
    consumer.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    m.update({"cpu_user_s": ru.ru_utime, "cpu_sys_s": ru.ru_stime, "max_rss_kb": ru.ru_maxrss})
    log("info", "metrics final " + json.dumps(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
