#!/usr/bin/python3
"""Stripe API stub for the sync worker's tests: a small HTTP/1.1 server on 127.0.0.1.

Usage: stripe_stub.py --dir DIR

DIR/state.json is what the stub serves (re-read whenever the file is replaced, so a test
changes the "Stripe" state between ticks by writing a new file and renaming it over):
  page_size       most items per list page (Stripe's own `limit` still applies)
  products        {id: product object}
  prices          [price object, "product" as an id: expanded when expand[]=data.product]
  customers       {id: customer object}
  subscriptions   [subscription object; items.data[].price as a price id, served inline;
                  latest_invoice an invoice id, expanded from `invoices` with
                  expand[]=data.latest_invoice]
  invoices        {id: invoice object}
  now             optional unix seconds: Stripe's clock, sent as every answer's Date header
                  (else the real time)
  faults          [{method, path (prefix), status, headers, body | raw, delay_ms, times,
                  reset, truncate}]: the first matching fault with times left (-1 = forever)
                  answers instead; "reset": true closes the connection with a TCP RST and no
                  answer; "truncate": N sends the full Content-Length but only N body bytes
Every request is appended to DIR/requests.jsonl (method, path, query, headers that matter,
body). The port is written to DIR/port once listening (binds port 0: a free port).
POST /v1/customers honours Idempotency-Key like Stripe (same key: same answer) and creates
"cus_for_<metadata[org_id]>" (then "..._2", "..._3" when that id exists: a re-created customer),
with the form's metadata. Errors have Stripe's shape {"error": {type, code, message}}.
Payment flows (bw-api): every POST honours Idempotency-Key (same key and body: the first
answer again; same key, another body: 400 idempotency_error, as Stripe). POST
/v1/checkout/sessions creates "cs_test_<n>" (url https://checkout.stripe.test/c/pay/<id>)
from the form; GET/POST /v1/subscriptions/<id> read and update a state subscription (updates
kept in memory over the state, and listed by GET /v1/subscriptions: items[i][id|price|deleted],
cancel_at_period_end, proration_behavior, metadata[k]); POST /v1/billing_portal/sessions creates "bps_<n>".
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
STATE = {"key": None, "data": {}, "fault_used": {}}
CREATED = {}      # customer id -> customer object created by POST
IDEMPOTENT = {}   # Idempotency-Key -> (status, body)
IDEM_BODY = {}    # Idempotency-Key -> the form it was first used with
SESSIONS = []     # checkout and portal sessions created
SUB_UPDATES = {}  # subscription id -> the subscription as last updated


def form_dict(form, prefix):
    """{k: v} of the form's prefix[k] fields."""
    return {k[len(prefix) + 1:-1]: v[0] for k, v in form.items()
            if k.startswith(prefix + "[") and k.endswith("]") and "][" not in k}


def find_sub(state, sid):
    if sid in SUB_UPDATES:
        return SUB_UPDATES[sid]
    for s in state.get("subscriptions", []):
        if s.get("id") == sid:
            return json.loads(json.dumps(s))
    return None


def update_sub(state, sid, form):
    s = find_sub(state, sid)
    if s is None:
        return stripe_error(404, "invalid_request_error", "No such subscription: '%s'" % sid,
                            "resource_missing", "id")
    items = s.setdefault("items", {"object": "list", "has_more": False, "data": []})["data"]
    i = 0
    while "items[%d][id]" % i in form or "items[%d][price]" % i in form:
        iid = form.get("items[%d][id]" % i, [None])[0]
        price = form.get("items[%d][price]" % i, [None])[0]
        deleted = form.get("items[%d][deleted]" % i, ["false"])[0] == "true"
        cur = [it for it in items if it.get("id") == iid] if iid else []
        if iid and not cur:
            return stripe_error(400, "invalid_request_error",
                                "No such subscription item: '%s'" % iid, "resource_missing")
        if deleted:
            items[:] = [it for it in items if it.get("id") != iid]
        elif cur:
            if price:
                cur[0]["price"] = price
        else:
            items.append({"id": "si_new_%d" % (len(items) + 1), "object": "subscription_item",
                          "price": price})
        i += 1
    if "cancel_at_period_end" in form:
        s["cancel_at_period_end"] = form["cancel_at_period_end"][0] == "true"
    if "proration_behavior" in form:
        s["proration_behavior_last"] = form["proration_behavior"][0]
    md = form_dict(form, "metadata")
    if md:
        s.setdefault("metadata", {}).update(md)
    SUB_UPDATES[sid] = s
    return 200, expand_items(state, s)


def expand_items(state, s):
    """A copy of subscription s with its items' prices as objects (as Stripe answers)."""
    prices = {p["id"]: p for p in state.get("prices", [])}
    s = json.loads(json.dumps(s))
    for it in s.get("items", {}).get("data", []):
        if isinstance(it.get("price"), str):
            it["price"] = prices.get(it["price"], {"id": it["price"]})
    return s


def load_state(d):
    path = os.path.join(d, "state.json")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    key = (st.st_ino, st.st_mtime_ns, st.st_size)
    if STATE["key"] != key:
        with open(path) as f:
            STATE["data"] = json.load(f)
        STATE["key"] = key
        STATE["fault_used"] = {}
    return STATE["data"]


def stripe_error(status, etype, message, code=None, param=None):
    err = {"type": etype, "message": message}
    if code:
        err["code"] = code
    if param:
        err["param"] = param
    return status, {"error": err}


def page(items, q, url, state):
    limit = int(q.get("limit", ["10"])[0])
    limit = max(1, min(limit, 100, int(state.get("page_size", 100))))
    after = q.get("starting_after", [None])[0]
    start = 0
    if after is not None:
        ids = [i.get("id") for i in items]
        if after not in ids:
            return stripe_error(400, "invalid_request_error",
                                "No such object: '%s'" % after, "resource_missing",
                                "starting_after")
        start = ids.index(after) + 1
    data = items[start:start + limit]
    return 200, {"object": "list", "url": url, "has_more": start + limit < len(items),
                 "data": data}


def all_customers(state):
    c = dict(CREATED)
    c.update(state.get("customers", {}))  # a test deletes a created customer in its state
    return c


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-stub/1"

    def log_message(self, fmt, *args):  # quiet: tests read requests.jsonl instead
        pass

    def date_time_string(self, timestamp=None):
        # Stripe's clock: the state's "now" when set (a test skews it from the local clock)
        now = STATE["data"].get("now") if isinstance(STATE["data"], dict) else None
        return super().date_time_string(now if now is not None else timestamp)

    def handle_any(self, method):
        parts = urlsplit(self.path)
        q = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        with LOCK:
            state = load_state(self.server.dir)
            rec = {"method": method, "path": parts.path, "query": parts.query,
                   "authorization": self.headers.get("Authorization"),
                   "stripe_version": self.headers.get("Stripe-Version"),
                   "idempotency_key": self.headers.get("Idempotency-Key"),
                   "body": body, "time": time.time()}
            with open(os.path.join(self.server.dir, "requests.jsonl"), "a") as f:
                f.write(json.dumps(rec) + "\n")
            fault = self.pick_fault(state, method, parts.path)
            if fault is None:
                status, out = self.route(state, method, parts.path, q, body)
        if fault is not None:
            return self.send_fault(fault)
        self.send_json(status, out)

    def pick_fault(self, state, method, path):
        for i, f in enumerate(state.get("faults", [])):
            if f.get("method", method) != method or not path.startswith(f.get("path", "")):
                continue
            used = STATE["fault_used"].get(i, 0)
            times = f.get("times", 1)
            if times != -1 and used >= times:
                continue
            STATE["fault_used"][i] = used + 1
            return f
        return None

    def send_fault(self, f):
        if f.get("delay_ms"):
            time.sleep(f["delay_ms"] / 1000.0)
        if f.get("reset"):
            # SO_LINGER 0: close() sends RST; the client sees "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        status = f.get("status", 500)
        if "raw" in f:
            raw = f["raw"].encode()
        else:
            body = f.get("body")
            if body is None:
                etype = "rate_limit_error" if status == 429 else (
                    "api_error" if status >= 500 else "invalid_request_error")
                body = {"error": {"type": etype, "message": "stub fault %d" % status}}
            raw = json.dumps(body).encode()
        try:
            self.send_response(status)
            for k, v in f.get("headers", {}).items():
                self.send_header(k, str(v))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if "truncate" in f:
                self.wfile.write(raw[:int(f["truncate"])])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the client timed out first

    def send_json(self, status, out):
        raw = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Request-Id", "req_stub")
        self.end_headers()
        self.wfile.write(raw)

    def route(self, state, method, path, q, body):
        if self.headers.get("Authorization", "")[:10] != "Bearer sk_":
            return stripe_error(401, "invalid_request_error", "Invalid API Key provided")
        prices = {p["id"]: p for p in state.get("prices", [])}
        products = state.get("products", {})
        if method == "GET" and path == "/v1/prices":
            items = [dict(p) for p in state.get("prices", [])]
            if q.get("active", [""])[0] == "true":
                items = [p for p in items if p.get("active", True)]
            if "data.product" in q.get("expand[]", []):
                for p in items:
                    p["product"] = products.get(p["product"], p["product"])
            return page(items, q, "/v1/prices", state)
        if method == "GET" and path == "/v1/subscriptions":
            cus = q.get("customer", [None])[0]
            status = q.get("status", ["active"])[0]
            items = []
            for s in state.get("subscriptions", []):
                s = SUB_UPDATES.get(s.get("id"), s)  # as updated by POST, like Stripe
                if cus and s.get("customer") != cus:
                    continue
                if status not in ("all", s.get("status")):
                    continue
                s = json.loads(json.dumps(s))
                for it in s.get("items", {}).get("data", []):
                    if isinstance(it.get("price"), str):
                        it["price"] = prices.get(it["price"], {"id": it["price"]})
                inv = s.get("latest_invoice")
                if isinstance(inv, str) and "data.latest_invoice" in q.get("expand[]", []):
                    s["latest_invoice"] = state.get("invoices", {}).get(inv, inv)
                items.append(s)
            return page(items, q, "/v1/subscriptions", state)
        if method == "GET" and path.startswith("/v1/customers/"):
            cid = path[len("/v1/customers/"):]
            c = all_customers(state).get(cid)
            if c is None:
                return stripe_error(404, "invalid_request_error",
                                    "No such customer: '%s'" % cid, "resource_missing", "id")
            return 200, c
        key = self.headers.get("Idempotency-Key") if method == "POST" else None
        if key and key in IDEMPOTENT:
            if IDEM_BODY.get(key) != body:
                return stripe_error(400, "idempotency_error",
                                    "Keys for idempotent requests can only be used with the "
                                    "same parameters they were first used with.")
            return IDEMPOTENT[key]
        res = self.route_new(state, method, path, q, body)
        if key and res[0] < 500:
            IDEMPOTENT[key] = res
            IDEM_BODY[key] = body
        return res

    def route_new(self, state, method, path, q, body):
        form = parse_qs(body, keep_blank_values=True)
        if method == "POST" and path == "/v1/checkout/sessions":
            sid = "cs_test_%d" % (len(SESSIONS) + 1)
            cs = {"id": sid, "object": "checkout.session",
                  "url": "https://checkout.stripe.test/c/pay/" + sid,
                  "mode": form.get("mode", [None])[0],
                  "customer": form.get("customer", [None])[0],
                  "metadata": form_dict(form, "metadata"), "status": "open"}
            SESSIONS.append(cs)
            return 200, cs
        if method == "POST" and path == "/v1/billing_portal/sessions":
            sid = "bps_%d" % (len(SESSIONS) + 1)
            ps = {"id": sid, "object": "billing_portal.session",
                  "url": "https://billing.stripe.test/p/session/" + sid,
                  "customer": form.get("customer", [None])[0],
                  "return_url": form.get("return_url", [None])[0]}
            SESSIONS.append(ps)
            return 200, ps
        if path.startswith("/v1/subscriptions/"):
            sid = path[len("/v1/subscriptions/"):]
            if method == "POST":
                return update_sub(state, sid, form)
            s = find_sub(state, sid)
            if s is None:
                return stripe_error(404, "invalid_request_error",
                                    "No such subscription: '%s'" % sid, "resource_missing")
            return 200, expand_items(state, s)
        if method == "POST" and path == "/v1/customers":
            org = form.get("metadata[org_id]", [""])[0]
            cid = "cus_for_" + org if org else "cus_anon_%d" % (len(CREATED) + 1)
            known = all_customers(state)
            n = 2
            base = cid
            while cid in known:
                cid = "%s_%d" % (base, n)
                n += 1
            md = {k[len("metadata["):-1]: v[0] for k, v in form.items()
                  if k.startswith("metadata[") and k.endswith("]")}
            c = {"id": cid, "object": "customer", "created": int(time.time()),
                 "metadata": md}
            CREATED[cid] = c
            return 200, c
        return stripe_error(404, "invalid_request_error",
                            "Unrecognized request URL (%s: %s)" % (method, path))

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.dir = args.dir
    tmp = os.path.join(args.dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, os.path.join(args.dir, "port"))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
