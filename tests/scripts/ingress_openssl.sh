#!/usr/bin/env bash
# End-to-end check of bw-webhook-ingress with a request signed by openssl (not by our code):
# 200 and the exact body, key and headers on Kafka (kcat); 400 for an openssl forgery.
# Usage: ingress_openssl.sh <bw-webhook-ingress binary> <repo root>
set -euo pipefail
bin=$1
repo=$2
stack=${BW_STACK_DIR:-$repo/.stack}
brokers=${KAFKA_BROKERS:-127.0.0.1:9092}
work=$(mktemp -d)
pid=
cleanup() {
	if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [[ -f $work/ingress.log ]] && tail -20 "$work/ingress.log" >&2; exit 1; }

topic=it_ingress_openssl_$$_$RANDOM
printf '%s 1\n' "$topic" >"$work/topics.conf"
"${JAVA:-java}" -cp "$stack/jars/*" -Dlog4j2.configurationFile="$repo/deploy/local/log4j2.properties" \
	-Dbw.log.file="$work/topics.log" "$repo/deploy/local/CreateTopics.java" "$brokers" \
	"$work/topics.conf" 1 >/dev/null || fail "cannot create topic $topic"

secret=whsec_openssl_$(openssl rand -hex 16)
HTTP_PORT=0 HTTP_BIND=127.0.0.1 STRIPE_WEBHOOK_SECRET=$secret STRIPE_EVENTS_TOPIC=$topic \
	KAFKA_BROKERS=$brokers "$bin" 2>"$work/ingress.log" &
pid=$!
port=
for _ in $(seq 1 100); do
	port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$work/ingress.log" | head -1)
	[[ -n $port ]] && break
	kill -0 "$pid" 2>/dev/null || fail "ingress exited"
	sleep 0.1
done
[[ -n $port ]] || fail "ingress did not start"
url=http://127.0.0.1:$port/webhooks/stripe

id=evt_openssl_$$_$RANDOM
body='{"id":"'$id'","object":"event","type":"invoice.paid","data":{"object":{"id":"in_1","customer":"cus_OpenSSL"}}}'
t=$(date +%s)
sig=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.*= //')
code=$(curl -s -m 30 -o "$work/resp" -w '%{http_code}' -H "Stripe-Signature: t=$t,v1=$sig" \
	-H 'Content-Type: application/json' --data-binary "$body" "$url")
[[ $code == 200 && $(cat "$work/resp") == '{"received":true}' ]] || fail "signed: $code $(cat "$work/resp")"

forged=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "whsec_not_the_secret" | sed 's/^.*= //')
code=$(curl -s -m 30 -o "$work/resp" -w '%{http_code}' -H "Stripe-Signature: t=$t,v1=$forged" \
	--data-binary "$body" "$url")
[[ $code == 400 && $(cat "$work/resp") == '{"error":"signature_mismatch"}' ]] || fail "forged: $code"

kcat -C -b "$brokers" -t "$topic" -o beginning -c 1 -e -q -f '%k\n%s\n%h\n' >"$work/msg" ||
	fail "kcat could not read $topic"
[[ $(sed -n 1p "$work/msg") == cus_OpenSSL ]] || fail "key: $(sed -n 1p "$work/msg")"
[[ $(sed -n 2p "$work/msg") == "$body" ]] || fail "body differs"
headers=$(sed -n 3p "$work/msg")
for h in "stripe.event_id=$id" "stripe.event_type=invoice.paid" "stripe.signature_verified=true"; do
	[[ ,$headers, == *",$h,"* ]] || fail "header $h missing in $headers"
done
[[ $headers == *stripe.received_at=20* ]] || fail "received_at missing in $headers"
echo "openssl-signed request accepted and published unchanged to $topic"
