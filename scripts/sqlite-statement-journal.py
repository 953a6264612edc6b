#!/usr/bin/env python3
"""What SQLite's statement journal costs a multi-row INSERT on this machine: the same 200,000
rows (a WITHOUT ROWID table keyed by (tenant, seq) plus an index on a random 64-bit key, 250-byte
payloads) inserted 500 rows per statement, 8,000 rows per transaction, WAL, synchronous=FULL,
once with plain INSERT (SQLite keeps a statement journal so it can undo one statement) and once
with INSERT OR FAIL (no statement journal; CompanyOS rolls back the whole transaction on error).
Usage: scripts/sqlite-statement-journal.py"""
import os, sqlite3, tempfile, time

N, ROWS_PER_STATEMENT, ROWS_PER_TX = 200_000, 500, 8_000

def run(verb):
    path = os.path.join(tempfile.mkdtemp(), "journal.db")
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA page_size=8192"); c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE t (tenant TEXT, seq INT, k INT, payload TEXT, PRIMARY KEY (tenant, seq)) WITHOUT ROWID")
    c.execute("CREATE INDEX tk ON t (k)")
    rows = [("tenant-%04d" % (i % 100), i // 100, int.from_bytes(os.urandom(8), "big", signed=True), "x" * 250)
            for i in range(N)]
    sql = f"{verb} INTO t VALUES " + ",".join(["(?,?,?,?)"] * ROWS_PER_STATEMENT)
    started = time.time()
    for b in range(0, N, ROWS_PER_TX):
        c.execute("BEGIN")
        for r in range(b, b + ROWS_PER_TX, ROWS_PER_STATEMENT):
            c.execute(sql, [v for row in rows[r:r + ROWS_PER_STATEMENT] for v in row])
        c.execute("COMMIT")
    print(f"{verb}: {int(N / (time.time() - started))} rows/s")

run("INSERT")
run("INSERT OR FAIL")
