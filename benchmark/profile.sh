#!/usr/bin/env bash
# Where the time goes: samples every thread (Node, the I/O thread, redis-server)
# while one client runs GET at 100 concurrent callers. Needs `perf` (Debian: linux-perf).
# Usage: benchmark/profile.sh [ops]   (default 1,500,000 GETs)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${TMPDIR:-/tmp}/atlas-redis.perf
N=${1:-1500000} perf record -F 2999 -g -o "$out" -- node --perf-basic-prof benchmark/profile-get.js
echo "== by thread and binary"
perf report -i "$out" --no-children --sort comm,dso -g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
echo "== hottest symbols on the Node thread"
perf report -i "$out" --no-children --comm node --sort sym -g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30
