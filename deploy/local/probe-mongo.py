#!/usr/bin/python3
"""Probe what the local MongoDB server (mongo-java-server, or a real mongod) does for the operations
the billing workers rely on. Prints raw results/errors; uses database `bw_probe` (dropped first).

    /usr/bin/python3 deploy/local/probe-mongo.py [mongodb://127.0.0.1:27017]
"""
import json
import sys

import pymongo
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

uri = sys.argv[1] if len(sys.argv) > 1 else "mongodb://127.0.0.1:27017"
client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=3000)
print("server:", json.dumps(client.server_info().get("version")), "buildinfo keys:",
      sorted(client.server_info().keys())[:6])
client.drop_database("bw_probe")
db = client.bw_probe


def show(label, value):
    print(f"  {label}: {json.dumps(value, default=str, sort_keys=True)}")


def err(e):
    d = {"type": type(e).__name__, "code": getattr(e, "code", None)}
    details = getattr(e, "details", None)
    if details is not None:
        d["details"] = details
    else:
        d["str"] = str(e)
    return d



def _txn():
    with client.start_session() as s:
        with s.start_transaction():
            db.t.insert_one({"a": 1}, session=s)
    return "committed"


print("(a) unique index, duplicate insert")
c = db.records
show("create_index", c.create_index([("event_id", 1)], unique=True, name="event_id_unique"))
show("index_information", c.index_information())
c.insert_one({"event_id": "e1", "n": 1})
try:
    c.insert_one({"event_id": "e1", "n": 2})
    show("second insert", "NO ERROR")
except DuplicateKeyError as e:
    show("second insert -> DuplicateKeyError", err(e))
except OperationFailure as e:
    show("second insert -> OperationFailure", err(e))
show("count", c.count_documents({}))

print("(b) conditional upsert on {org_id, balance_version} when the org exists at another version")
cust = db.customers
show("create_index", cust.create_index([("org_id", 1)], unique=True))
cust.insert_one({"org_id": "X", "balance_version": 5, "used": 10})
for upsert in (True, False):
    try:
        r = cust.update_one({"org_id": "X", "balance_version": 4},
                            {"$set": {"used": 99}, "$inc": {"balance_version": 1}}, upsert=upsert)
        show(f"upsert={upsert} result", r.raw_result)
    except DuplicateKeyError as e:
        show(f"upsert={upsert} -> DuplicateKeyError", err(e))
    except OperationFailure as e:
        show(f"upsert={upsert} -> OperationFailure", err(e))
r = cust.update_one({"org_id": "X", "balance_version": 5},
                    {"$set": {"used": 11}, "$inc": {"balance_version": 1}}, upsert=True)
show("matching version, upsert=True", r.raw_result)
show("doc now", cust.find_one({"org_id": "X"}, {"_id": 0}))
# upsert of a brand-new org with the version in the filter
r = cust.update_one({"org_id": "Y", "balance_version": 0},
                    {"$set": {"used": 1}, "$inc": {"balance_version": 1}}, upsert=True)
show("new org upsert (filter version 0, $inc version)", r.raw_result)
show("new doc", cust.find_one({"org_id": "Y"}, {"_id": 0}))
r = cust.update_one({"org_id": "Z"},
                    {"$setOnInsert": {"granted_credits": 100, "balance_version": 0}}, upsert=True)
show("$setOnInsert upsert (new)", r.raw_result)
r = cust.update_one({"org_id": "Z"},
                    {"$setOnInsert": {"granted_credits": 100, "balance_version": 0}}, upsert=True)
show("$setOnInsert upsert (exists)", r.raw_result)
show("Z doc", cust.find_one({"org_id": "Z"}, {"_id": 0}))

print("(c) unordered bulk insert with duplicates (e1 exists; e2 twice in the batch)")
docs = [{"event_id": i} for i in ["e1", "e2", "e3", "e2", "e4"]]
try:
    r = c.insert_many(docs, ordered=False)
    show("insert_many", "NO ERROR " + str(r.inserted_ids))
except BulkWriteError as e:
    show("BulkWriteError.details", e.details)
show("event_ids now", sorted(d["event_id"] for d in c.find({}, {"_id": 0})))
try:
    r = c.bulk_write([InsertOne({"event_id": "e5"}), InsertOne({"event_id": "e1"}),
                      InsertOne({"event_id": "e6"})], ordered=False)
    show("bulk_write InsertOne unordered", r.bulk_api_result)
except BulkWriteError as e:
    show("bulk_write InsertOne unordered BulkWriteError.details", e.details)
show("event_ids now", sorted(d["event_id"] for d in c.find({}, {"_id": 0})))
try:
    r = c.insert_many([{"event_id": "e7"}, {"event_id": "e1"}, {"event_id": "e8"}], ordered=True)
except BulkWriteError as e:
    show("ordered insert_many BulkWriteError.details", e.details)
show("event_ids now (ordered stops at first error)", sorted(d["event_id"] for d in c.find({}, {"_id": 0})))

print("(d) find with $in")
show("find $in [e1,e3,nope]", sorted(d["event_id"] for d in c.find({"event_id": {"$in": ["e1", "e3", "nope"]}})))
show("find org_id $in [X,Y,Q]", sorted(d["org_id"] for d in cust.find({"org_id": {"$in": ["X", "Y", "Q"]}})))

print("(e) $set of an array of subdocuments")
arr = [{"event_id": "a", "ts": 1, "b": {"from_paid": 0}}, {"event_id": "b", "ts": 2, "b": {"from_paid": 3}}]
r = cust.update_one({"org_id": "X"}, {"$set": {"recent_events": arr}})
show("update", r.raw_result)
show("read back", cust.find_one({"org_id": "X"}, {"_id": 0, "recent_events": 1}))
show("find by recent_events.event_id=b", cust.count_documents({"recent_events.event_id": "b"}))
r = cust.update_one({"org_id": "X"}, {"$push": {"recent_events": {"$each": [{"event_id": "c"}], "$slice": -2}}})
show("$push $each $slice -2", r.raw_result)
show("read back", cust.find_one({"org_id": "X"}, {"_id": 0, "recent_events": 1}))

print("(f) bulk_write of several update_one ops (unordered)")
cust.insert_many([{"org_id": f"o{i}", "balance_version": 1, "used": 0} for i in range(3)])
ops = [
    UpdateOne({"org_id": "o0", "balance_version": 1}, {"$set": {"used": 5}, "$inc": {"balance_version": 1}}),
    UpdateOne({"org_id": "o1", "balance_version": 9}, {"$set": {"used": 5}, "$inc": {"balance_version": 1}}),  # version miss
    UpdateOne({"org_id": "o2", "balance_version": 1}, {"$set": {"used": 0}}),  # matched, not modified
    UpdateOne({"org_id": "o3", "balance_version": 0}, {"$set": {"used": 7}, "$inc": {"balance_version": 1}}, upsert=True),
]
try:
    r = cust.bulk_write(ops, ordered=False)
    show("bulk_api_result", r.bulk_api_result)
except BulkWriteError as e:
    show("BulkWriteError.details", e.details)
ops = [
    UpdateOne({"org_id": "o0", "balance_version": 2}, {"$inc": {"balance_version": 1}}),
    UpdateOne({"org_id": "o1", "balance_version": 7}, {"$inc": {"balance_version": 1}}, upsert=True),  # dup key
    UpdateOne({"org_id": "o2", "balance_version": 1}, {"$inc": {"balance_version": 1}}),
]
try:
    r = cust.bulk_write(ops, ordered=False)
    show("bulk with version-miss upsert: bulk_api_result", r.bulk_api_result)
except BulkWriteError as e:
    show("bulk with version-miss upsert: BulkWriteError.details", e.details)
show("orgs", [(d["org_id"], d.get("balance_version")) for d in cust.find({}, {"_id": 0}).sort("org_id", 1)])

print("(g) raw update command reply (what mongoc sees)")
rep = db.command({"update": "customers", "ordered": False, "updates": [
    {"q": {"org_id": "o0", "balance_version": 3}, "u": {"$inc": {"balance_version": 1}}},
    {"q": {"org_id": "o1", "balance_version": 99}, "u": {"$inc": {"balance_version": 1}}},
    {"q": {"org_id": "o9", "balance_version": 0}, "u": {"$inc": {"balance_version": 1}}, "upsert": True},
]})
show("update cmd reply", rep)
rep = db.command({"insert": "records", "ordered": False, "documents": [{"event_id": "e1"}, {"event_id": "e9"}]})
show("insert cmd reply", rep)
show("records actually present (e9 new, e1 dup)", sorted(d["event_id"] for d in c.find({}, {"_id": 0})))
print("  NOTE: compare the reply's n / pymongo nInserted above with what was really inserted")

print("(h) other features")
for name, fn in [
    ("hello", lambda: db.command("hello")),
    ("findAndModify returnDocument after", lambda: cust.find_one_and_update(
        {"org_id": "o0"}, {"$inc": {"balance_version": 1}}, return_document=pymongo.ReturnDocument.AFTER,
        projection={"_id": 0})),
    ("transactions (start_session/with_transaction)", lambda: _txn()),
    ("$max update operator", lambda: cust.update_one({"org_id": "o0"}, {"$max": {"seen_ts": 5}}).raw_result),
    ("$expr in filter", lambda: cust.count_documents({"$expr": {"$gt": ["$balance_version", 1]}})),
    ("aggregate $group sum", lambda: list(cust.aggregate([{"$group": {"_id": None, "s": {"$sum": "$used"}}}]))),
    ("pipeline-style update", lambda: cust.update_one({"org_id": "o0"}, [{"$set": {"x": 1}}]).raw_result),
    ("write concern majority insert", lambda: db.get_collection(
        "wc", write_concern=pymongo.WriteConcern(w="majority", j=True)).insert_one({"a": 1}).acknowledged),
    ("sparse unique index on a field most docs lack", lambda: db.sp.insert_many([{"a": 1}, {"a": 2}]) and db.sp.create_index(
        [("session_id", 1)], unique=True, sparse=True)),
    ("insert 2 docs without session_id into sparse-unique coll", lambda: db.sp.insert_many([{"a": 3}, {"a": 4}]).acknowledged),
    ("partialFilterExpression unique index", lambda: c.create_index(
        [("session_id", 1)], unique=True, name="sess", partialFilterExpression={"session_id": {"$exists": True}})),
]:
    try:
        show(name, fn())
    except Exception as e:  # noqa: BLE001
        show(name + " -> ERROR", err(e))


client.drop_database("bw_probe")
