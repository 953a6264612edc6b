#!/usr/bin/env python3
"""What SQLite itself can do on this machine with the ingestion layouts, without CompanyOS:
Python's sqlite3 (C code, one prepared statement, executemany) inserting what an ingestion
writes per event in 4,000-event transactions, WAL, synchronous=FULL: first the old row-per-event
layout (usage_events + ledger_leaves, ADR 0005), then the bundle layout of ADR 0006 (one leaf
bundle and one event bundle per tenant per transaction). The ceiling any SQLite-backed
ingestion path can approach on this box.
Usage: scripts/sqlite-ceiling.py [events]"""
import hashlib, json, os, sqlite3, sys, tempfile, time, uuid

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000

def connect(page):
    """A fresh store with the settings CompanyOS uses (WAL, synchronous=FULL, 64 MiB cache)."""
    c = sqlite3.connect(os.path.join(tempfile.mkdtemp(), "ceiling.db"), isolation_level=None)
    c.execute(f"PRAGMA page_size={page}")
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("PRAGMA cache_size=-65536")
    return c

def run(label, events_ddl, indexes, page=8192):
    c = connect(page)
    c.execute(events_ddl)
    for index in indexes:
        c.execute(index)
    c.execute("CREATE TABLE ledger_leaves (log_id TEXT NOT NULL, leaf_index BIGINT NOT NULL, "
              "leaf_hash BLOB, leaf_data BLOB, PRIMARY KEY (log_id, leaf_index)) WITHOUT ROWID")
    rows, leaves, seqs = [], [], {}
    for i in range(N):
        tenant = "tenant-%04d" % (i % 100)
        seq = seqs.get(tenant, 0)
        seqs[tenant] = seq + 1
        event_id = str(uuid.uuid4())
        key = int.from_bytes(hashlib.sha256(f"{tenant}\n{event_id}".encode()).digest()[:8], "big", signed=True)
        canonical = json.dumps({"event_id": event_id, "metric": "requests", "quantity": "3",
                                "request_id": "r%d" % i, "service": "api", "tenant_id": tenant,
                                "timestamp": "2026-11-25T21:00:00Z", "unit": "request"}, separators=(",", ":"))
        digest = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
        rows.append((tenant, key, event_id, seq, digest, "api", "requests", "request", "3", 0, 0,
                     "on_time", '["unsigned"]', None, None, 0, canonical, None))
        leaf = (f"companyos/usage-leaf/v1\ntenant_id:{tenant}\nleaf_index:{seq}\n"
                f"event_id:{event_id}\ndigest:{digest}\nclass:on_time\n").encode()
        leaves.append(("tenant/" + tenant, seq, hashlib.sha256(b"\0" + leaf).digest(), leaf))
    started = time.time()
    for b in range(0, N, 4000):
        c.execute("BEGIN")
        c.executemany("INSERT INTO usage_events VALUES (%s)" % ",".join("?" * 18), rows[b:b + 4000])
        c.executemany("INSERT INTO ledger_leaves VALUES (?,?,?,?)", leaves[b:b + 4000])
        c.execute("COMMIT")
    print(f"{label}: {int(N / (time.time() - started))} events/s")

columns = ("tenant_id TEXT NOT NULL, event_key BIGINT NOT NULL, event_id TEXT NOT NULL, seq BIGINT NOT NULL, "
           "digest TEXT NOT NULL, service TEXT, metric TEXT, unit TEXT, quantity TEXT, event_time BIGINT, "
           "event_day BIGINT, class TEXT, flags TEXT, source TEXT, source_seq BIGINT, received_at BIGINT, "
           "canonical TEXT, source_signature TEXT")
run("CompanyOS schema (compact 64-bit dedupe key)",
    f"CREATE TABLE usage_events ({columns}, PRIMARY KEY (tenant_id, seq))",
    ["CREATE INDEX k ON usage_events (event_key)"])
run("text dedupe key (tenant_id, event_id)",
    f"CREATE TABLE usage_events ({columns}, PRIMARY KEY (tenant_id, seq))",
    ["CREATE UNIQUE INDEX k ON usage_events (tenant_id, event_id)"])
run("no dedupe index at all (lower bound of the layout)",
    f"CREATE TABLE usage_events ({columns}, PRIMARY KEY (tenant_id, seq))", [])


def run_bundles(label, page=2048, clustered=False):
    """ADR 0006: per transaction, one leaf bundle and one event bundle per tenant. `clustered`
    stores leaf bundles in a WITHOUT ROWID table keyed by (log_id, first_index) instead."""
    c = connect(page)
    key = ("PRIMARY KEY (log_id, first_index)) WITHOUT ROWID" if clustered
           else "UNIQUE (log_id, first_index))")
    c.execute("CREATE TABLE ledger_leaf_bundles (log_id TEXT NOT NULL, first_index BIGINT NOT NULL, "
              "leaf_count BIGINT NOT NULL, leaf_hashes BLOB NOT NULL, leaf_data BLOB NOT NULL, "
              + key)
    c.execute("CREATE TABLE usage_event_bundles (id INTEGER PRIMARY KEY AUTOINCREMENT, "
              "tenant_id TEXT NOT NULL, first_seq BIGINT NOT NULL, event_count BIGINT NOT NULL, "
              "received_at BIGINT NOT NULL, event_keys BLOB NOT NULL, events BLOB NOT NULL, "
              "UNIQUE (tenant_id, first_seq))")
    events, seqs = [], {}
    for i in range(N):
        tenant = "tenant-%04d" % (i % 100)
        seq = seqs.get(tenant, 0)
        seqs[tenant] = seq + 1
        event_id = str(uuid.uuid4())
        key = hashlib.sha256(f"{tenant}\n{event_id}".encode()).digest()[:8]
        canonical = json.dumps({"event_id": event_id, "metric": "requests", "quantity": "3",
                                "request_id": "r%d" % i, "service": "api", "tenant_id": tenant,
                                "timestamp": "2026-11-25T21:00:00Z", "unit": "request"}, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).digest()
        entry = (bytes([len(event_id)]) + event_id.encode() + digest + b"\x00\x08unsigned"
                 + len(canonical).to_bytes(4, "big") + canonical.encode() + b"\x00\x00")
        leaf = (f"companyos/usage-leaf/v1\ntenant_id:{tenant}\nleaf_index:{seq}\n"
                f"event_id:{event_id}\ndigest:sha256:{digest.hex()}\nclass:on_time\n").encode()
        events.append((tenant, seq, key, entry, leaf, hashlib.sha256(b"\0" + leaf).digest()))
    started = time.time()
    for b in range(0, N, 4000):
        by_tenant = {}
        for event in events[b:b + 4000]:
            by_tenant.setdefault(event[0], []).append(event)
        leaf_rows, event_rows = [], []
        for tenant, rows in by_tenant.items():
            leaf_rows.append(("tenant/" + tenant, rows[0][1], len(rows), b"".join(r[5] for r in rows),
                              b"\x01" + b"".join(len(r[4]).to_bytes(4, "big") + r[4] for r in rows)))
            event_rows.append((tenant, rows[0][1], len(rows), 0, b"".join(r[2] for r in rows),
                               b"\x01" + b"".join(r[3] for r in rows)))
        c.execute("BEGIN")
        c.executemany("INSERT INTO ledger_leaf_bundles VALUES (?,?,?,?,?)", leaf_rows)
        c.executemany("INSERT INTO usage_event_bundles (tenant_id, first_seq, event_count, "
                      "received_at, event_keys, events) VALUES (?,?,?,?,?,?)", event_rows)
        c.execute("COMMIT")
    print(f"{label}: {int(N / (time.time() - started))} events/s")


run_bundles("bundles (ADR 0006), 2 KiB pages")
run_bundles("bundles, leaf bundles clustered by (log_id, first_index), 2 KiB pages", clustered=True)
