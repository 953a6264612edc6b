#!/usr/bin/env bash
# Where a PostgreSQL group commit spends the server's time: turns on statement logging
# (log_min_duration_statement = 0) for one `bench ingest --backend postgres` run with one
# request at a time (groups of 1,000 events over 100 tenants, what two HTTP clients make),
# turns it off again, and sums the logged execution times by statement. Needs a superuser on
# 127.0.0.1:5432 (trust auth, as on the CI machine) and the server log in /var/log/postgresql.
# Usage: scripts/postgres-statement-times.sh [path/to/companyos] [events]
set -euo pipefail
bin="$(realpath "${1:-target/release/companyos}")"
events="${2:-20000}"
log="$(ls /var/log/postgresql/postgresql-*-main.log | head -1)"
psql_admin() { psql -h 127.0.0.1 -U postgres -qAt "$@"; }
start_line=$(($(wc -l < "$log") + 1))
psql_admin -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()" >/dev/null
trap 'psql_admin -c "ALTER SYSTEM RESET log_min_duration_statement" -c "SELECT pg_reload_conf()" >/dev/null' EXIT
"$bin" bench ingest --backend postgres --events "$events" --concurrency 1 --no-baseline 2>/dev/null
tail -n +"$start_line" "$log" | python3 -c '
import collections, re, sys
groups = int(sys.argv[1]) // 1000
text = sys.stdin.read()
# Only the ingestion: from the first statement of a group commit on (the bench creates its
# operator and 100 tenants first).
text = text[text.find("SET LOCAL enable_seqscan"):]
totals = collections.defaultdict(lambda: [0, 0.0])
for m in re.finditer(r"duration: ([\d.]+) ms\s+execute [^:]*:\s*(.{0,60})", text):
    key = re.sub(r"\$\d+", "?", m.group(2))
    totals[key][0] += 1
    totals[key][1] += float(m.group(1))
print(f"| statement (first 60 characters) | executions | ms per 1,000-event group |")
print("| --- | --- | --- |")
for key, (n, ms) in sorted(totals.items(), key=lambda kv: -kv[1][1])[:15]:
    print(f"| `{key.strip()}` | {n} | {ms / groups:.2f} |")
' "$events"
