#!/usr/bin/env bash
# Packs what a Spark executor needs to run relink into target/relink-spark.tar.gz, for
# spark-submit --archives target/relink-spark.tar.gz#relink:
#   bin/relink, bin/librelink_model.so   the release build (run `cargo build --release` first)
#   lib/                                 libtorch's shared libraries (LD_LIBRARY_PATH=relink/lib)
#   model/                               the sentence-embedding model (--model relink/model)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/target/relink-spark.tar.gz}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for f in relink librelink_model.so; do
  [ -f "$repo/target/release/$f" ] || { echo "spark-package: no target/release/$f: run cargo build --release" >&2; exit 1; }
done
mkdir -p "$stage/bin" "$stage/lib" "$stage/model"
cp "$repo/target/release/relink" "$repo/target/release/librelink_model.so" "$stage/bin/"
cp -L "$repo/.libtorch/lib/"*.so* "$stage/lib/"
cp -rL "$repo/models/all-MiniLM-L6-v2/." "$stage/model/"
tar -C "$stage" -czf "$out.tmp" . && mv "$out.tmp" "$out"
echo "spark-package: $out ($(du -h "$out" | cut -f1))"
