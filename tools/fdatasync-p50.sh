#!/usr/bin/env bash
# Measures how long one durable 4 KiB write takes on the disk under the data directory: writes
# 4 KiB and calls fdatasync, 1,000 times, in a temporary file on the same filesystem, and prints
# the p50 and p99 in milliseconds as one JSON object. Every figure in docs/BENCHMARKS.md is
# stated with this number, because a commit's latency is bounded below by it.
#   tools/fdatasync-p50.sh [directory, default ./data] [iterations, default 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-./data}
iterations=${2:-1000}
mkdir -p "$dir"
exec python3 - "$dir" "$iterations" <<'PY'
import json, os, sys, tempfile, time

directory, iterations = sys.argv[1], int(sys.argv[2])
block = os.urandom(4096)
fd, path = tempfile.mkstemp(prefix=".fdatasync-", dir=directory)
try:
    samples = []
    for _ in range(iterations):
        os.write(fd, block)
        start = time.perf_counter_ns()
        os.fdatasync(fd)
        samples.append((time.perf_counter_ns() - start) / 1e6)
finally:
    os.close(fd)
    os.unlink(path)
samples.sort()
def percentile(p):
    return round(samples[min(len(samples) - 1, int(p * len(samples)))], 3)
print(json.dumps({
    "directory": os.path.abspath(directory),
    "iterations": iterations,
    "write_bytes": len(block),
    "fdatasync_p50_ms": percentile(0.50),
    "fdatasync_p99_ms": percentile(0.99),
    "cores": os.cpu_count(),
}))
PY
