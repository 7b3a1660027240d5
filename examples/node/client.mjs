// bw-api from Node (20+, built-in fetch): pre-check, the paid work, publish usage, then read
// the balance until the usage worker applied it. docs/INTEGRATION.md describes the flow.
//   BW_API_URL=http://127.0.0.1:8090 BW_API_KEY=... node examples/node/client.mjs ORG SPUS
// Prints one JSON line per step.
import { randomUUID } from "node:crypto";

const base = process.env.BW_API_URL ?? "http://127.0.0.1:8090";
const headers = {
  Authorization: `Bearer ${process.env.BW_API_KEY}`,
  "Content-Type": "application/json",
};
const [org, spusText] = process.argv.slice(2);
const spus = Number.parseInt(spusText ?? "1", 10);

async function balance(orgId, n) {
  const q = n ? `?spus=${n}` : "";
  const res = await fetch(`${base}/v1/orgs/${encodeURIComponent(orgId)}/balance${q}`, { headers });
  if (res.status !== 200) throw new Error(`balance: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

// 202: Kafka acknowledged every event. 503: retry with the SAME events (same event_id), the
// usage worker counts each event_id once. 400: fix the listed events, nothing was published.
async function publish(events) {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${base}/v1/usage`, { method: "POST", headers, body: JSON.stringify(events) });
    const body = await res.json();
    if (res.status === 202) return body;
    if (res.status !== 503 || attempt === 5) throw new Error(`usage: HTTP ${res.status} ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 200 * attempt));
  }
}

const before = await balance(org, spus);
console.log(JSON.stringify({ step: "precheck", allowed: before.allowed, available: before.available,
  shortfall: before.shortfall }));
if (!before.allowed) {
  console.log(JSON.stringify({ step: "refused", status: 402 })); // the backend's answer to its client
  process.exit(0);
}
// ... the paid work happens here ...
const event = {
  event_id: randomUUID(), org_id: org, spus, operation: "document_parse", source: "examples/node",
  timestamp: new Date().toISOString(),
};
const accepted = await publish([event]);
console.log(JSON.stringify({ step: "published", accepted: accepted.accepted, event_ids: accepted.event_ids }));

// The usage worker applies it asynchronously: the balances change once it did (balance_version
// moves too, but also for bookkeeping such as clearing a published alert).
const deadline = Date.now() + 30000;
for (;;) {
  const now = await balance(org);
  if (JSON.stringify(now.balances) !== JSON.stringify(before.balances)) {
    console.log(JSON.stringify({ step: "applied", total_remaining: now.balances.total_remaining,
      balance_version: now.balance_version }));
    break;
  }
  if (Date.now() > deadline) throw new Error("usage not applied within 30 s");
  await new Promise((r) => setTimeout(r, 200));
}
