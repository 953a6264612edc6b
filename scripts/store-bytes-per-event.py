#!/usr/bin/env python3
"""Bytes a SQLite store writes and keeps per ingested event: runs `companyos-bench ingest` into a
fresh directory, reads the process's `/proc/<pid>/io` until it exits (what it wrote: WAL frames and
checkpoints), then sums SQLite's `dbstat` page sizes by table. Shows what the store grows by per
event and where (docs/BENCHMARKS.md, session 5).
Usage: scripts/store-bytes-per-event.py path/to/companyos-bench [events]"""
import glob, subprocess, sqlite3, sys, tempfile, time

binary = sys.argv[1]
events = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
with tempfile.TemporaryDirectory() as directory:
    bench = subprocess.Popen(
        [binary, "ingest", "--events", str(events), "--concurrency", "16",
         "--no-baseline", "--dir", directory],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    io = {}
    while bench.poll() is None:
        try:
            with open(f"/proc/{bench.pid}/io") as f:
                io = dict(line.split(": ") for line in f.read().splitlines())
        except OSError:
            pass
        time.sleep(0.1)
    print(bench.stdout.read().strip())
    written = int(io.get("wchar", "0"))
    print(f"written by the process: {written:,} bytes, {written / events:,.0f} per event "
          "(last reading before it exited)")
    store = sqlite3.connect(glob.glob(f"{directory}/*/companyos.db")[0])
    total = 0
    print("| table or index | bytes | bytes per event |")
    print("| --- | --- | --- |")
    for name, size in store.execute(
            "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 8"):
        total += size
        print(f"| `{name}` | {size:,} | {size / events:,.1f} |")
    print(f"| the largest eight together | {total:,} | {total / events:,.1f} |")
