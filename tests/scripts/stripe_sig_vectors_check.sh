#!/usr/bin/env bash
# Regenerates the Stripe-Signature vectors with openssl and fails if the committed file differs.
set -euo pipefail
dir=$1
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
bash "$dir/gen_vectors.sh" "$tmp"
diff -u "$dir/vectors.txt" "$tmp"
echo "vectors.txt matches openssl"
