#!/usr/bin/env python3
"""Publish usage straight to Kafka (confluent-kafka) and read its result from billing.results.

    KAFKA_BROKERS=127.0.0.1:9092 USAGE_TOPIC=usage.events RESULTS_TOPIC=billing.results \
        python3 examples/python/publish_usage.py ORG SPUS

- idempotent producer (enable.idempotence: acks=all, no duplicates from the producer's own
  retries), key = org_id (one org's events stay in order on one partition);
- a retry of the same work re-sends the SAME event_id: here the event is deliberately sent
  twice, and the usage worker answers "applied" once and "duplicate" once;
- the results are read from RESULTS_TOPIC (a consumer group of your own, from the end of the
  topic as it was before publishing, so only new results are scanned).
Prints one JSON line per result of the event, then a summary line.
"""
import json
import os
import sys
import time
import uuid
from datetime import datetime, timezone

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

brokers = os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092")
usage_topic = os.environ.get("USAGE_TOPIC", "usage.events")
results_topic = os.environ.get("RESULTS_TOPIC", "billing.results")
org, spus = sys.argv[1], int(sys.argv[2])


def publish(producer, event):
    """Produces one event and waits for the broker's acknowledgement (raises on failure)."""
    outcome = {}

    def on_delivery(err, msg):
        outcome["err"] = err

    producer.produce(usage_topic, key=event["org_id"], value=json.dumps(event), on_delivery=on_delivery)
    producer.flush(30)
    if outcome.get("err") is not None or "err" not in outcome:
        raise KafkaException(outcome.get("err"))


# Where the results topic ends now: only results after this point can be ours.
consumer = Consumer({"bootstrap.servers": brokers, "group.id": "example-" + uuid.uuid4().hex,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})
meta = consumer.list_topics(results_topic, timeout=10).topics[results_topic]
start = []
for p in meta.partitions:
    _, high = consumer.get_watermark_offsets(TopicPartition(results_topic, p), timeout=10)
    start.append(TopicPartition(results_topic, p, high))
consumer.assign(start)

producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "linger.ms": 5})
event = {"event_id": str(uuid.uuid4()), "org_id": org, "spus": spus, "operation": "document_parse",
         "source": "examples/python", "timestamp": datetime.now(timezone.utc).isoformat()}
publish(producer, event)
publish(producer, event)  # a retry of the same work: same event_id

statuses = []
deadline = time.time() + 60
while len(statuses) < 2 and time.time() < deadline:
    msg = consumer.poll(0.5)
    if msg is None or msg.error():
        continue
    result = json.loads(msg.value())
    if result.get("event_id") != event["event_id"]:
        continue
    statuses.append(result["status"])
    print(json.dumps({"status": result["status"], "spus": result.get("spus"),
                      "breakdown": result.get("breakdown"),
                      "total_remaining": result.get("balances", {}).get("total_remaining")}))
consumer.close()
print(json.dumps({"event_id": event["event_id"], "statuses": sorted(statuses)}))
sys.exit(0 if sorted(statuses) == ["applied", "duplicate"] else 1)
