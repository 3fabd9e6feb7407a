#!/usr/bin/env python3
"""relink as the worker of an Apache Spark job.

Spark does the distribution, the retries and the shuffle; every step that reads or ranks an
article is a relink worker command, run as a subprocess on the executors:

  1. export   (driver)     relink export INPUT       articles as JSON Lines, with key/seq/epoch
  2. stats    (driver)     relink stats --stdin      BM25 document frequencies, qualities
  3. embed    (executors)  relink embed --stdin      {key, vector} per article
  4. buckets  (shuffle)    each article is a query in the bucket of its date, and a candidate
                           in every bucket whose ranking window reaches it (undated articles:
                           in every bucket; undated queries: one bucket with every article)
  5. rank     (executors)  relink rank --stdin --stats   one process per bucket
  6. lists    (output)     JSON Lines part files, in corpus order; `relink apply OUTPUT FOLDER`
                           writes them into the files

With the same ranking window, the lists are those of `relink refresh --search exact` on one
machine given the same vectors (make spark-check).

    spark-submit --master 'local[2]' spark/relink_job.py --input FOLDER --output LISTS \\
        --window-before 30 --window-after 30
"""

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

from pyspark import SparkContext, SparkFiles, TaskContext
from pyspark.sql import SparkSession

DAY = 86_400
# Queries without a date rank against every article: their bucket.
UNDATED = -(2**62)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="a folder of article files, or a .jsonl file")
    p.add_argument("--output", required=True, help="folder for the lists (replaced)")
    p.add_argument("--relink", default=None, help="the relink binary (default: relink on PATH)")
    p.add_argument("--model", default=None, help="model folder, passed to relink as --model")
    p.add_argument("--cache", default=None,
                   help="embedding cache folder for `relink embed --cache` (local to each executor)")
    p.add_argument("--window-before", type=float, default=30.0,
                   help="days before an article its candidates may be (0: no limit) [30]")
    p.add_argument("--window-after", type=float, default=30.0,
                   help="days after an article its candidates may be (0: no limit) [30]")
    p.add_argument("--bucket-days", type=float, default=30.0,
                   help="days of queries per ranking shard [30]")
    p.add_argument("--rank-option", action="append", default=[], metavar="NAME=VALUE",
                   help="a ranking option for relink rank, e.g. lexical-weight=0.4 (repeatable)")
    p.add_argument("--partitions", type=int, default=None,
                   help="partitions of the embedding and ranking stages [Spark's default]")
    p.add_argument("--work", default=None,
                   help="folder for the exported articles and statistics (shared storage on a "
                        "cluster) [a temporary folder]")
    p.add_argument("--test-embedder", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kill-first-attempt", action="store_true",
                   help="test: the first ranking task kills its own Python worker on its first "
                        "attempt (Spark must retry it)")
    return p.parse_args(argv)


def files_root():
    """Where Spark puts what --archives and --files ship, on the driver or an executor."""
    sc = SparkContext._active_spark_context
    if sc is not None:  # the driver
        return sc._jvm.org.apache.spark.SparkFiles.getRootDirectory()
    return SparkFiles.getRootDirectory()


def located(path):
    """`path` as given where it exists, else inside the folder where Spark puts what
    --archives and --files ship (an executor's, or the driver's)."""
    if path is None or os.path.isabs(path) or os.path.exists(path):
        return path
    shipped = os.path.join(files_root(), path)
    return shipped if os.path.exists(shipped) else path


def relink_base(args):
    """The relink command, resolved where it runs (driver or executor)."""
    return [located(args.relink) if args.relink else shutil.which("relink") or "relink"]


def relink_env(cmd):
    """The environment of a relink process: a packed relink (scripts/spark-package.sh) keeps
    libtorch in lib/ beside bin/."""
    env = dict(os.environ)
    lib = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(cmd[0]))), "lib")
    if os.path.isdir(lib):
        env["LD_LIBRARY_PATH"] = lib + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    return env


def model_flags(args):
    flags = []
    if args.model:
        flags += ["--model", located(args.model)]
    if args.test_embedder:
        flags += ["--test-embedder"]
    return flags


def run_task(cmd, lines, what):
    """Runs a relink worker over `lines` on an executor; returns its output lines. Any failure
    fails the task (Spark retries it)."""
    done = subprocess.run(cmd, input="\n".join(lines).encode(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=relink_env(cmd))
    if done.returncode != 0:
        raise RuntimeError(f"relink {what} failed ({done.returncode}): "
                           + done.stderr.decode(errors="replace")[-2000:])
    return done.stdout.decode().splitlines()


def rank_flags(args):
    flags = ["--quiet", "--window-before", str(args.window_before),
             "--window-after", str(args.window_after)]
    for opt in args.rank_option:
        name, _, value = opt.partition("=")
        if not value:
            raise SystemExit(f"--rank-option {opt}: expected NAME=VALUE")
        if name == "k":
            name = "top"
        flags += [f"--{name}"] if value == "true" else [f"--{name}", value]
    return flags


def run_driver(cmd, stdin_path, stdout_path):
    """Runs a relink command on the driver; bad input lines (exit 1) are reported, not fatal."""
    with open(stdout_path, "wb") as out, open(stdin_path or os.devnull, "rb") as inp:
        done = subprocess.run(cmd, stdin=inp, stdout=out, stderr=subprocess.PIPE,
                              env=relink_env(cmd))
    sys.stderr.write(done.stderr.decode(errors="replace"))
    if done.returncode not in (0, 1):
        raise SystemExit(f"relink-job: {shlex.join(cmd)} failed with status {done.returncode}")


def buckets_of(epoch, home_buckets, args):
    """Buckets whose queries may draw an article dated `epoch` (None: undated) as a candidate."""
    if epoch is None:
        return list(home_buckets)
    days = epoch / DAY
    # A day of margin on each side: the ranker drops candidates by its own f32 arithmetic.
    lo = -math.inf if args.window_after <= 0 else math.floor((days - args.window_after - 1) / args.bucket_days)
    hi = math.inf if args.window_before <= 0 else math.floor((days + args.window_before + 1) / args.bucket_days)
    return [b for b in home_buckets if b == UNDATED or lo <= b <= hi]


def home_bucket(epoch, args):
    return UNDATED if epoch is None else math.floor(epoch / DAY / args.bucket_days)


def embed_partition(lines, args):
    """{key, vector} lines of a partition's articles."""
    cmd = relink_base(args) + ["embed", "--stdin", "--quiet"] + model_flags(args)
    if args.cache:
        cmd += ["--cache", located(args.cache)]
    lines = list(lines)
    return run_task(cmd, lines, "embed") if lines else []


def rank_buckets(rows, args):
    """Ranks each bucket of a partition with one relink rank process; yields list lines."""
    ctx = TaskContext.get()
    if args.kill_first_attempt and ctx.partitionId() == 0 and ctx.attemptNumber() == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    cmd = (relink_base(args) + ["rank", "--stdin", "--stats", SparkFiles.get("relink-stats.json")]
           + rank_flags(args) + model_flags(args))
    for _bucket, members in rows:
        members = list(members)
        if not any(query for query, _ in members):
            continue
        # The exported line is a JSON object: mark candidates that are not queries here.
        lines = [line if query else line[:-1] + ',"query":false}' for query, line in members]
        yield from run_task(cmd, lines, "rank")


def main(argv):
    args = parse_args(argv)
    if args.bucket_days <= 0:
        raise SystemExit("--bucket-days must be positive")
    spark = SparkSession.builder.appName("relink").getOrCreate()
    sc = spark.sparkContext
    relink = relink_base(args)
    work = args.work or tempfile.mkdtemp(prefix="relink-job-")
    os.makedirs(work, exist_ok=True)
    articles_path = os.path.join(work, "articles.jsonl")
    stats_path = os.path.join(work, "relink-stats.json")

    # 1-2: the articles as JSON Lines, and the corpus-wide statistics.
    run_driver(relink + ["export", args.input], None, articles_path)
    run_driver(relink + ["stats", "--stdin", "--quiet", "-o", stats_path] + model_flags(args),
               articles_path, os.devnull)
    sc.addFile(stats_path)
    partitions = args.partitions or sc.defaultParallelism
    articles = sc.textFile(articles_path, partitions)

    # 3: vectors, on the executors.
    vectors = (articles.mapPartitions(lambda lines: embed_partition(lines, args))
               .map(json.loads).map(lambda o: (o["key"], o["vector"])))

    # 4: each article with its vector, in the buckets that need it.
    def keyed(line):
        o = json.loads(line)
        return o["key"], o

    with_vectors = articles.map(keyed).join(vectors, partitions).map(
        lambda kv: dict(kv[1][0], vector=kv[1][1]))
    with_vectors.cache()
    home = sorted(with_vectors.map(lambda o: home_bucket(o.get("epoch"), args)).distinct().collect())

    def spread(o):
        line = json.dumps(o, ensure_ascii=False, separators=(",", ":"))
        mine = home_bucket(o.get("epoch"), args)
        for b in buckets_of(o.get("epoch"), home, args):
            yield b, (b == mine, line)
        if mine not in buckets_of(o.get("epoch"), home, args):
            yield mine, (True, line)

    shards = with_vectors.flatMap(spread).groupByKey(partitions)

    # 5-6: one relink rank per bucket; the lists in corpus order.
    lists = (shards.mapPartitions(lambda rows: rank_buckets(rows, args))
             .sortBy(lambda line: json.loads(line)["seq"], numPartitions=partitions))
    if os.path.exists(args.output):
        shutil.rmtree(args.output)
    lists.saveAsTextFile(args.output)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
