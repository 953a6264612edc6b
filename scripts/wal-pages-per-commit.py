#!/usr/bin/env python3
"""WAL pages one group commit writes per table, on a real CompanyOS SQLite store: builds a store
with `companyos-bench ingest` (100 tenants), then, on a copy, replays the rows one group of
EVENTS events writes into each table in turn (bundles of EVENTS/100 events per tenant, interior
node rows, head updates, counters, rollups) and reports the WAL bytes of each commit. Shows
which per-tenant structures a small group pays for (ADR 0006, docs/BENCHMARKS.md).
Usage: scripts/wal-pages-per-commit.py path/to/companyos-bench [events per group] [leaf entry bytes]
(leaf entry bytes: 70 for the compact usage leaves, 194 for the whole-text leaves of schema 4)."""
import glob, os, shutil, sqlite3, subprocess, sys, tempfile

binary = sys.argv[1]
events = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
leaf_bytes = int(sys.argv[3]) if len(sys.argv) > 3 else 70
work = tempfile.mkdtemp()
subprocess.run([binary, "ingest", "--events", "200000", "--concurrency", "16",
                "--no-baseline", "--dir", work], check=True, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)
source = glob.glob(os.path.join(work, "*", "companyos.db"))[0]
per_tenant = max(1, events // 100)


def fresh():
    copy = os.path.join(work, "copy.db")
    for f in glob.glob(copy + "*"):
        os.remove(f)
    shutil.copy(source, copy)
    c = sqlite3.connect(copy, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA wal_autocheckpoint=0")
    c.execute("PRAGMA cache_size=-65536")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return c, copy + "-wal"


parts = {
    "usage_event_bundles": lambda c, g: [c.execute(
        "INSERT INTO usage_event_bundles (tenant_id, first_seq, event_count, received_at, "
        "event_keys, events) VALUES (?,?,?,?,?,?)",
        (f"tenant-{t:04d}", 10**7 + g * per_tenant, per_tenant, 0, os.urandom(8 * per_tenant),
         os.urandom(276 * per_tenant))) for t in range(100)],
    "ledger_leaf_bundles": lambda c, g: [c.execute(
        "INSERT INTO ledger_leaf_bundles (log_id, first_index, leaf_count, leaf_hashes, "
        "leaf_data) VALUES (?,?,?,?,?)",
        (f"tenant/tenant-{t:04d}", 10**7 + g * per_tenant, per_tenant,
         os.urandom(32 * per_tenant), os.urandom(leaf_bytes * per_tenant))) for t in range(100)],
    "ledger_nodes (one level-4 row per 16 leaves)": lambda c, g: [c.execute(
        "INSERT INTO ledger_nodes (log_id, level, node_index, hash) VALUES (?,?,?,?)",
        (f"tenant/tenant-{t:04d}", 4, 10**6 + g * per_tenant + i, os.urandom(32)))
        for t in range(100) for i in range(max(1, per_tenant // 16))],
    "ledger_heads": lambda c, g: c.execute(
        "UPDATE ledger_heads SET tree_size = tree_size + 1, frontier = "
        "randomblob(length(frontier)), root = randomblob(32) WHERE log_id LIKE 'tenant/%'"),
    "usage_counters": lambda c, g: c.execute("UPDATE usage_counters SET accepted = accepted + 1"),
    "usage_daily": lambda c, g: c.execute("UPDATE usage_daily SET events = events + 1"),
}
print(f"| table ({events} events, 100 tenants) | WAL bytes per commit | pages |")
print("| --- | --- | --- |")
for name, write in parts.items():
    c, wal = fresh()
    sizes = []
    for g in range(5):
        before = os.path.getsize(wal) if os.path.exists(wal) else 0
        c.execute("BEGIN IMMEDIATE")
        write(c, g)
        c.execute("COMMIT")
        sizes.append(os.path.getsize(wal) - before)
    median = sorted(sizes[1:])[len(sizes[1:]) // 2]
    print(f"| {name} | {median:,} | {median // (2048 + 24)} |")
shutil.rmtree(work)
