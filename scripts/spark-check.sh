#!/usr/bin/env bash
# make spark-check CORPUS=DIR [WINDOW_BEFORE=30 WINDOW_AFTER=30 MASTER='local[2,4]' KILL=1]
#
# Ranks a corpus twice, on copies of its folder: once with `relink refresh --search exact` on
# this machine, once with the Spark job in local mode (spark/relink_job.py, then relink apply),
# with the same ranking window, and compares every article file byte for byte. The job embeds
# through the first run's embedding cache: the same vectors, so that what is compared is the
# ranking (a model's last bits depend on the batch a text is embedded in). Ends with
# `spark-check: N of N lists equal`; exit status 1 on any difference.
#   KILL=1  the first ranking task kills its own Python worker once: Spark must retry it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:?usage: spark-check.sh CORPUS_FOLDER}
before=${WINDOW_BEFORE:-30}
after=${WINDOW_AFTER:-30}
master=${MASTER:-local[2,4]}
relink=${RELINK_BIN:-$repo/target/release/relink}
venv=${SPARK_VENV:-$repo/.spark-venv}
[ -x "$venv/bin/spark-submit" ] || { echo "spark-check: no PySpark in $venv: run scripts/fetch-deps.sh spark" >&2; exit 2; }
command -v java > /dev/null || { echo "spark-check: no Java: run scripts/fetch-deps.sh spark" >&2; exit 2; }

name=$(basename "$(cd "$corpus" && pwd)")
work=${SPARK_CHECK_DIR:-$repo/target/spark-check}/$name
rm -rf "$work" && mkdir -p "$work"
copy() { cp -r "$1" "$2" && rm -rf "$2/.relink"; }
now() { date +%s%N; }
secs() { printf '%d.%02d' $(( ($2 - $1) / 1000000000 )) $(( ($2 - $1) / 10000000 % 100 )); }
copy "$corpus" "$work/single"
copy "$corpus" "$work/spark"

window=(--window-before "$before" --window-after "$after")
t0=$(now)
"$relink" refresh "$work/single" --search exact "${window[@]}" --quiet ${RELINK_FLAGS:-} > "$work/refresh.txt"
t1=$(now)
# The same refresh again from its warm cache, for the single-process time.
copy "$corpus" "$work/single-warm"
mkdir "$work/single-warm/.relink"
cp "$work/single/.relink/embeddings.bin" "$work/single-warm/.relink/"
t2=$(now)
"$relink" refresh "$work/single-warm" --search exact "${window[@]}" --quiet ${RELINK_FLAGS:-} > /dev/null
t3=$(now)

kill=()
[ "${KILL:-0}" = 1 ] && kill=(--kill-first-attempt)
export PATH="$venv/bin:$PATH" PYSPARK_PYTHON="$venv/bin/python" PYSPARK_DRIVER_PYTHON="$venv/bin/python"
t4=$(now)
spark-submit --master "$master" --conf spark.ui.enabled=false --conf spark.ui.showConsoleProgress=false \
  --driver-java-options "-Dlog4j.rootLogger=ERROR" \
  "$repo/spark/relink_job.py" --relink "$relink" --input "$work/spark" --output "$work/lists" \
  --cache "$work/single/.relink" --work "$work/job" "${window[@]}" ${JOB_FLAGS:-} "${kill[@]}" \
  2> "$work/spark.log" || { tail -40 "$work/spark.log" >&2; echo "spark-check: the job failed (log: $work/spark.log)" >&2; exit 1; }
t5=$(now)
"$relink" apply "$work/lists" "$work/spark" --quiet > "$work/apply.txt"
t6=$(now)

total=0; equal=0
while IFS= read -r -d '' f; do
  rel=${f#"$work/single/"}
  total=$((total + 1))
  if cmp -s "$f" "$work/spark/$rel"; then equal=$((equal + 1)); else echo "spark-check: differs: $rel" >&2; fi
done < <(find "$work/single" -path "$work/single/.relink" -prune -o -type f -print0)
lists=$(grep -c . "$work"/lists/part-* | awk -F: '{s += $NF} END {print s}')
echo "spark-check: $name: refresh $(secs "$t0" "$t1")s (from its cache: $(secs "$t2" "$t3")s), Spark job $master $(secs "$t4" "$t5")s + apply $(secs "$t5" "$t6")s; $lists lists"
echo "spark-check: $equal of $total lists equal"
[ "$equal" = "$total" ] && [ "$lists" = "$total" ]
