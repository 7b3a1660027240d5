#!/usr/bin/env bash
# Pre-check before paid work: may ORG spend SPUS now? (docs/INTEGRATION.md, step 1)
#   BW_API_URL=http://127.0.0.1:8090 BW_API_KEY=... examples/http/precheck.sh ORG SPUS
# Prints the answer's pre-check fields; exits 0 when allowed, 3 when not (the backend answers
# its client 402 then), 1 on any other failure.
set -euo pipefail
org="$1" spus="$2"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
status="$(curl -sS -o "$out" -w '%{http_code}' \
    -H "Authorization: Bearer ${BW_API_KEY:?}" \
    "${BW_API_URL:-http://127.0.0.1:8090}/v1/orgs/${org}/balance?spus=${spus}")"
if [[ "$status" != 200 ]]; then
    echo "precheck: HTTP $status $(cat "$out")" >&2
    exit 1
fi
jq -c '{org_id, spus, allowed, available, shortfall, total_remaining: .balances.total_remaining}' "$out"
[[ "$(jq -r .allowed "$out")" == true ]] || exit 3
