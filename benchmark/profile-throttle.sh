#!/usr/bin/env bash
# Instructions redis-server spends per throttler increment (inside EVALSHA), counted
# by callgrind: deterministic, unlike timings on a shared VM. Needs valgrind.
# Usage: benchmark/profile-throttle.sh [fresh|busy|steady|sparse] [script.lua]   (after npm run build)
#   e.g. git show HEAD~1:src/scripts/throttle.lua > /tmp/old.lua; benchmark/profile-throttle.sh steady /tmp/old.lua
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-fresh}
script=${2:-}
dir=$(mktemp -d)
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
vg=$!
trap 'kill $vg 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
node benchmark/profile-throttle.js "$port" "$mode" $script
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
wait $vg || true
ir=$(callgrind_annotate --inclusive=yes "$dir/callgrind.out" 2>/dev/null | awk '/evalShaCommand/ && !n++ { gsub(",", "", $1); print $1 }')
echo "${script:-throttle.lua}, $mode: $((ir / 10000)) instructions per increment inside EVALSHA (400 calls × 25 increments)"
