#!/usr/bin/env bash
# Property-based API fuzzing: schemathesis generates requests from /openapi.json against a fresh
# server and fails on any 5xx. Needs `pip install schemathesis`.
# Usage: scripts/api-fuzz.sh [path/to/companyos] [max examples per operation]
set -euo pipefail
bin="${1:-target/release/companyos}"
examples="${2:-30}"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
. "$(dirname "$0")/serve-fresh.sh"
serve_fresh "$bin" "$work"
url="$COMPANYOS_URL"
token="$COMPANYOS_TOKEN"
"$bin" tenant create acme --name Acme >/dev/null
st run "$url/openapi.json" --url "$url" -H "Authorization: Bearer $token" \
  --checks not_a_server_error --max-examples "$examples" --workers 2
