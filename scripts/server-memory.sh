#!/usr/bin/env bash
# Peak memory of a `companyos serve` process (SQLite) as its store grows: feeds it NDJSON files
# of 1,000,000 events (random UUIDs over 100 tenants) with `companyos usage send`, and prints the
# server's VmHWM and VmRSS after each file. The bench commands report their own process, which
# also holds the request bodies; this measures the server alone.
# Usage: scripts/server-memory.sh [path/to/companyos] [millions of events]
set -euo pipefail
bin="$(realpath "${1:-target/release/companyos}")"
rounds="${2:-4}"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

. "$(dirname "$0")/serve-fresh.sh"
serve_fresh "$bin" "$work"
for i in $(seq 0 99); do "$bin" tenant create "$(printf 'tenant-%04d' "$i")" --name "Tenant $i" >/dev/null; done

kib() { awk -v key="$1:" '$1 == key {print $2}' "/proc/$server/status"; }
echo "| events sent | server VmHWM (MiB) | server VmRSS (MiB) | send time (s) |"
echo "| --- | --- | --- | --- |"
for round in $(seq "$rounds"); do
  python3 - "$work/events.ndjson" <<'PY'
import datetime, json, sys, uuid
at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
with open(sys.argv[1], "w") as out:
    for i in range(1_000_000):
        out.write(json.dumps({"event_id": str(uuid.uuid4()), "tenant_id": "tenant-%04d" % (i % 100),
                              "service": "api", "metric": "requests", "quantity": str(1 + i % 7),
                              "unit": "request", "timestamp": at, "request_id": "r%d" % i},
                             separators=(",", ":")) + "\n")
PY
  start=$(date +%s%N)
  "$bin" usage send "$work/events.ndjson" --output json >/dev/null
  end=$(date +%s%N)
  echo "| ${round},000,000 | $(( $(kib VmHWM) / 1024 )) | $(( $(kib VmRSS) / 1024 )) | $(( (end - start) / 1000000000 )) |"
done
