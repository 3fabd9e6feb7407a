#!/usr/bin/env bash
# End-to-end figures for `relink refresh` on a copy of ../shared/corpora/diablo4 (or $1):
#   cold   empty cache: read, embed every article, index, rank, write
#   warm   rerun with nothing changed
#   edit   rerun after one article's title was edited
# Each is run RUNS times (default 3); the median wall time and the largest peak RSS are
# printed, as measured by /usr/bin/time -v.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$repo/../shared/corpora/diablo4}
runs=${RUNS:-3}
bin=$repo/target/release/relink
work=$repo/target/bench-refresh
[ -x "$bin" ] || { echo "build first: make build" >&2; exit 2; }
[ -d "$src" ] || { echo "skipped: $src not found" >&2; exit 0; }

measure() { # the command; prints "seconds maxrss_kb"
  /usr/bin/time -v "$@" > /dev/null 2> "$work.time" || true
  local wall rss
  wall=$(grep 'Elapsed (wall clock)' "$work.time" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$work.time" | awk '{print $NF}')
  # m:ss.xx to seconds
  echo "$wall $rss" | awk '{ n=split($1,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s, $2 }'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A walls rsss
for stage in cold warm edit; do walls[$stage]=""; rsss[$stage]=0; done
for r in $(seq "$runs"); do
  rm -rf "$work" && mkdir -p "$work" && cp -r "$src"/. "$work/"
  read -r s m < <(measure "$bin" refresh "$work" --quiet); walls[cold]+="$s "; [ "$m" -gt "${rsss[cold]}" ] && rsss[cold]=$m
  read -r s m < <(measure "$bin" refresh "$work" --quiet); walls[warm]+="$s "; [ "$m" -gt "${rsss[warm]}" ] && rsss[warm]=$m
  f=$(grep -rl "^title: \"" "$work" --include="*.md" --include="*.txt" | sort | head -1 || true)
  sed -i "0,/^title: \"/s//title: \"Edited $r: /" "$f"
  read -r s m < <(measure "$bin" refresh "$work" --quiet); walls[edit]+="$s "; [ "$m" -gt "${rsss[edit]}" ] && rsss[edit]=$m
done
echo "relink refresh $(basename "$src"): $(ls "$src" | wc -l) files, $(nproc) cores, $runs runs"
for stage in cold warm edit; do
  med=$(echo "${walls[$stage]}" | tr ' ' '\n' | grep . | median)
  printf '  %-5s median %6.2f s   peak RSS %5d MiB   (runs: %s)\n' "$stage" "$med" $(( ${rsss[$stage]} / 1024 )) "${walls[$stage]% }"
done
