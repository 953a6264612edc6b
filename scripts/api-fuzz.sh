#!/usr/bin/env bash
# Property-based API fuzzing: schemathesis generates requests from /openapi.json against a fresh
# server and fails on any 5xx. Needs `pip install schemathesis`.
# Usage: scripts/api-fuzz.sh [path/to/companyos] [max examples per operation]
set -euo pipefail
bin="${1:-target/release/companyos}"
examples="${2:-30}"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" serve --data-dir "$work/data" --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 50); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url="$(awk '/listening on/ {print $3}' "$work/serve.out")"
token="$(awk '/admin token/ {print $NF}' "$work/serve.out")"
COMPANYOS_URL="$url" COMPANYOS_TOKEN="$token" "$bin" tenant create acme --name Acme >/dev/null
st run "$url/openapi.json" --url "$url" -H "Authorization: Bearer $token" \
  --checks not_a_server_error --max-examples "$examples" --workers 2
