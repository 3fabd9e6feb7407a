#!/usr/bin/env bash
# Latency of the commands an editor runs all day, on a warm copy of ../shared/corpora/diablo4
# (or $1): each command RUNS times (default 11), median and slowest wall time in milliseconds.
#   --version              process start
#   refresh, no change     answered from the files' stamps
#   refresh, one touched   one file read again, every vector from the cache, nothing written
#   related FILE           one corpus article's list (read, cached vectors, rank)
#   related TEXT           free text: the only one here that loads the model (libtorch)
#   eval                   every file parsed, every list ranked and scored
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$repo/../shared/corpora/diablo4}
runs=${RUNS:-11}
bin=$repo/target/release/relink
work=$repo/target/bench-cli
[ -x "$bin" ] || { echo "build first: make build" >&2; exit 2; }
[ -d "$src" ] || { echo "skipped: $src not found" >&2; exit 0; }
rm -rf "$work" && mkdir -p "$work" && cp -r "$src"/. "$work/"
"$bin" refresh "$work" --quiet > /dev/null
file=$(find "$work" -name '*.md' | sort | sed -n 1p)

time_ms() { # runs the command RUNS times; prints "median slowest" in ms
  local t0 t1 all=()
  for _ in $(seq "$runs"); do
    t0=$(date +%s%N); "$@" > /dev/null 2>&1 || true; t1=$(date +%s%N)
    all+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${all[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f %.1f\n", a[int((NR+1)/2)]/1000, a[NR]/1000}'
}

row() { # label, command...
  local label=$1; shift
  read -r med max < <(time_ms "$@")
  printf '  %-22s median %8.1f ms   slowest %8.1f ms\n' "$label" "$med" "$max"
}

echo "relink CLI latency, $(basename "$src") ($(find "$work" -name '*.md' | wc -l) files), $(nproc) cores, $runs runs each"
row "--version" "$bin" --version
row "refresh, no change" "$bin" refresh "$work" --quiet
row "refresh, one touched" sh -c "touch '$file' && '$bin' refresh '$work' --quiet"
row "related FILE" "$bin" related "$file"
row "related TEXT (model)" "$bin" related "Diablo 4 season of blood patch notes" --corpus "$work"
row "eval" "$bin" eval "$work"
