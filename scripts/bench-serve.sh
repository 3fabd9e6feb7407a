#!/usr/bin/env bash
# Load on `relink serve` with a real load generator (wrk, Debian's package: installed by
# `scripts/fetch-deps.sh loadgen`), on a warm copy of ../shared/corpora/diablo4 (or $1), over
# loopback. Server and wrk share the machine's cores, as they would on a small box.
#   GET  /v1/related   64 connections, every article of the corpus in turn, DURATION s: lists
#                      with the server's options are kept per state once made
#   GET  /v1/related&k=5  the same with an option given, so every answer is computed
#   POST /v1/related   16 connections, drafts (the model embeds them, batched), DURATION s
# Prints requests/s, latency percentiles, and the server's RSS before and after each run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$repo/../shared/corpora/diablo4}
duration=${DURATION:-60}
bin=$repo/target/release/relink
work=$repo/target/bench-serve
port=${PORT:-18977}
[ -x "$bin" ] || { echo "build first: make build" >&2; exit 2; }
[ -d "$src" ] || { echo "skipped: $src not found" >&2; exit 0; }
command -v wrk > /dev/null || { echo "wrk not installed: scripts/fetch-deps.sh loadgen" >&2; exit 2; }
rm -rf "$work" && mkdir -p "$work/corpus" && cp -r "$src"/. "$work/corpus/"
"$bin" refresh "$work/corpus" --quiet > /dev/null

"$bin" serve "$work/corpus" --addr "127.0.0.1:$port" --quiet 2> "$work/serve.log" &
server=$!
trap 'kill $server 2> /dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$work/serve.log" && break; sleep 0.1; done
grep "listening on" "$work/serve.log"

# Every article's path, URL-encoded, for the GET script to cycle through.
paths=$(cd "$work/corpus" && find . -name '*.md' | sed 's|^\./||' | sort |
  python3 -c 'import sys, urllib.parse; print(",".join("\"%s\"" % urllib.parse.quote(l.strip()) for l in sys.stdin))')
for extra in "" "&k=5"; do
  cat > "$work/get$extra.lua" <<LUA
local paths = { $paths }
local n = 0
request = function()
  n = n % #paths + 1
  return wrk.format("GET", "/v1/related?path=" .. paths[n] .. "$extra")
end
LUA
done
cat > "$work/post.lua" <<'LUA'
local words = { "season", "patch", "beta", "class", "boss", "release", "necromancer", "sorcerer", "leaderboards", "blood", "update", "servers" }
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"title": "Diablo 4 %s %s news %d", "excerpt": "What the %s change means for players"}',
    words[n % #words + 1], words[(n * 7) % #words + 1], n, words[(n * 5) % #words + 1])
  return wrk.format("POST", "/v1/related", { ["Content-Type"] = "application/json" }, body)
end
LUA
rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$server/status"; }

# One request each first: the model is loaded by the first draft, not measured below.
curl -s "http://127.0.0.1:$port/healthz" > /dev/null
curl -s -X POST "http://127.0.0.1:$port/v1/related" -d '{"title": "warm up"}' > /dev/null

echo "relink serve $(basename "$src"): $(nproc) cores, wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), ${duration} s a run"
for extra in "" "&k=5"; do
  echo "== GET /v1/related?path=...$extra, 64 connections (RSS before: $(rss) MiB)"
  wrk -t2 -c64 -d"${duration}s" --latency -s "$work/get$extra.lua" "http://127.0.0.1:$port" |
    grep -E "Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket errors"
  echo "   RSS after: $(rss) MiB"
done
echo "== POST /v1/related (drafts), 16 connections (RSS before: $(rss) MiB)"
wrk -t2 -c16 -d"${duration}s" --latency -s "$work/post.lua" "http://127.0.0.1:$port" |
  grep -E "Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket errors"
echo "   RSS after: $(rss) MiB"
curl -s "http://127.0.0.1:$port/metrics" | grep -E "^relink_embed(s|_batches)_total"
