#!/usr/bin/env bash
# Publish usage after the paid work (docs/INTEGRATION.md, step 3): one event per unit of work,
# event_id chosen by the caller and reused on every retry of the same work.
#   BW_API_URL=... BW_API_KEY=... examples/http/publish_usage.sh ORG EVENT_ID SPUS [OPERATION]
# Prints the answer; exits 0 on 202 (every event acknowledged by Kafka), 1 otherwise. On 503
# the same request (same event ids) is retried: the usage worker counts an event_id once.
set -euo pipefail
org="$1" event_id="$2" spus="$3" operation="${4:-document_parse}"
body="$(jq -cn --arg e "$event_id" --arg o "$org" --argjson s "$spus" --arg op "$operation" \
    --arg ts "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    '{event_id: $e, org_id: $o, spus: $s, operation: $op, source: "examples/http", timestamp: $ts}')"
for attempt in 1 2 3 4 5; do
    out="$(curl -sS -w '\n%{http_code}' -X POST -H "Authorization: Bearer ${BW_API_KEY:?}" \
        -H 'Content-Type: application/json' --data "$body" \
        "${BW_API_URL:-http://127.0.0.1:8090}/v1/usage")"
    status="${out##*$'\n'}"
    echo "${out%$'\n'*}"
    case "$status" in
        202) exit 0 ;;
        503) sleep "$attempt" ;;         # broker unavailable: retry the same event
        *) echo "publish: HTTP $status" >&2; exit 1 ;;
    esac
done
exit 1
