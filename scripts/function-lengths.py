#!/usr/bin/env python3
"""Functions over a length, for issue 15's "functions under ~70 lines": lines from a `fn` line to
its closing brace at the same indentation, in the Rust files given (default: crates/*/src).
Usage: scripts/function-lengths.py [--min N] [files...]"""
import glob, re, sys

args = sys.argv[1:]
minimum = 70
if args[:1] == ["--min"]:
    minimum, args = int(args[1]), args[2:]
files = args or sorted(glob.glob("crates/*/src/**/*.rs", recursive=True))
found = []
for path in files:
    lines = open(path).read().split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(pub(\([a-z]+\))? )?(async )?fn (\w+)", line)
        if not m or line.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        j = i + 1
        while j < len(lines) and not (lines[j].startswith(indent + "}") and
                                      len(lines[j]) - len(lines[j].lstrip()) == len(indent)):
            j += 1
        if j - i + 1 > minimum:
            found.append((j - i + 1, path, m.group(5)))
for length, path, name in sorted(found, reverse=True):
    print(f"{length:5} {path} {name}")
print(f"{len(found)} functions over {minimum} lines")
