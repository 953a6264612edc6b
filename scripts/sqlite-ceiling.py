#!/usr/bin/env python3
"""What SQLite itself can do on this machine with the ingestion schema, without CompanyOS:
Python's sqlite3 (C code, one prepared statement, executemany) inserting the rows an ingestion
writes per event (usage_events + ledger_leaves) in 4,000-event transactions, WAL,
synchronous=FULL. The ceiling any SQLite-backed ingestion path can approach on this box.
Usage: scripts/sqlite-ceiling.py [events]"""
import hashlib, json, os, sqlite3, sys, tempfile, time, uuid

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000

def run(label, events_ddl, indexes, page=8192):
    path = os.path.join(tempfile.mkdtemp(), "ceiling.db")
    c = sqlite3.connect(path, isolation_level=None)
    c.execute(f"PRAGMA page_size={page}")
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("PRAGMA cache_size=-65536")
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
