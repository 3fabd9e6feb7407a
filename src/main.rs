//! The `relink` command line: argument parsing and printing over the `relink` library.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use relink::config::FileConfig;
use relink::corpus::{self, Corpus};
use relink::editorial::ControlEdit;
use relink::embed::{Precision, DEFAULT_BATCH_SIZE};
use relink::engine::{default_state_dir, EmbedderChoice, Engine, EngineSettings, Timings};
use relink::eval::{self, Baseline};
use relink::index::{HnswParams, SearchMode};
use relink::rank::{RankOptions, RankOverrides, Scored};

/// Keeps the related-article lists of a news archive fresh.
#[derive(Parser)]
#[command(name = "relink", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rank every article and rewrite the `related:` lists that changed.
    Refresh(RefreshArgs),
    /// Print the related list of one article (file or URL) or of free text.
    Related(RelatedArgs),
    /// Score the lists relink would write against the lists the files hold.
    Eval(EvalArgs),
    /// Pin articles at the top of an article's list (in the order given, after earlier pins),
    /// then refresh that list.
    Pin(TargetArgs),
    /// Remove pins, then refresh the list.
    Unpin(TargetArgs),
    /// Keep articles out of an article's list, then refresh that list.
    Block(TargetArgs),
    /// Remove blocks, then refresh the list.
    Unblock(TargetArgs),
    /// Keep an article's list as it is: refresh never rewrites it.
    Lock(LockArgs),
    /// Let refresh rewrite an article's list again, and refresh it.
    Unlock(LockArgs),
    /// Answer related lists over HTTP (JSON API and the editor's page at /).
    Serve(ServeArgs),
    /// Fit the ranking options to the archive's own lists (or labels) on its older 80%, and
    /// report them against the defaults on the newest 20%.
    Tune(TuneArgs),
    /// Worker: articles as JSON Lines on stdin, `{"key", "vector"}` lines on stdout (vector:
    /// base64 of little-endian f32s). With --cache, vectors are looked up and kept there.
    Embed(EmbedArgs),
    /// Worker: the articles of a folder (or .jsonl file) as JSON Lines on stdout, each with its
    /// `key` (path in the folder) and `seq` (corpus position); `related` left out.
    Export(ExportArgs),
    /// Worker: articles as JSON Lines on stdin, the corpus-wide statistics that `relink rank`
    /// needs (BM25 document frequencies, qualities) as JSON on stdout or in --output.
    Stats(StatsArgs),
    /// Worker: a shard of articles with their `vector` on stdin, their lists on stdout, ranked
    /// with --stats as the whole corpus would rank them (exact search).
    Rank(RankArgs),
    /// Write lists ranked elsewhere (`relink rank` lines) into the folder's files, with
    /// refresh's guarantees.
    Apply(ApplyArgs),
}

#[derive(Args)]
struct ExportArgs {
    /// A folder of article files, one file, or a .jsonl file.
    path: PathBuf,
}

#[derive(Args)]
struct StatsArgs {
    /// Read the articles from standard input (one JSON object a line).
    #[arg(long, required = true)]
    stdin: bool,
    /// Write the statistics here (atomically) instead of to standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct RankArgs {
    /// Read the shard from standard input (one JSON object a line).
    #[arg(long, required = true)]
    stdin: bool,
    /// The corpus-wide statistics written by `relink stats`.
    #[arg(long, value_name = "FILE")]
    stats: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct ApplyArgs {
    /// Lists as `relink rank` writes them (JSON Lines; a folder: its part-* files, as Spark
    /// writes them; `-`: standard input).
    lists: PathBuf,
    /// The folder whose files the lists' keys name.
    folder: PathBuf,
    /// Show what would change without writing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct EmbedArgs {
    /// Read the articles from standard input (one JSON object a line).
    #[arg(long, required = true)]
    stdin: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct TuneArgs {
    #[command(flatten)]
    on: Scoring,
    /// Write the tuned options into the corpus's relink.toml (other lines kept).
    #[arg(long)]
    write: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: CommonArgs,
}

impl Scoring {
    /// The positive cut-offs given, in order, a repeat in a row given once.
    fn cut_offs(&self) -> Result<Vec<usize>> {
        // The same ceiling as `--top`: a cut-off past any list relink writes measures nothing,
        // and its cost (every list ranked that deep, a recall curve that long) grows with it.
        if let Some(&k) = self.ks.iter().find(|&&k| k > MAX_CUT_OFF) {
            bail!("--k {k}: out of range: cut-offs go from 1 to {MAX_CUT_OFF}, as --top does");
        }
        let mut ks: Vec<usize> = self.ks.iter().copied().filter(|&k| k > 0).collect();
        ks.dedup();
        if ks.is_empty() {
            bail!("--k needs at least one positive cut-off");
        }
        Ok(ks)
    }
}

/// The largest cut-off `eval` and `tune` accept: the largest list `--top` allows.
const MAX_CUT_OFF: usize = relink::rank::MAX_K;

/// What `eval` and `tune` score, and against what.
#[derive(Args)]
struct Scoring {
    /// A folder of article files or a JSON Lines file.
    path: PathBuf,
    /// Cut-offs to report, comma-separated (`tune` maximises the first one's recall, or its
    /// precision against labels).
    #[arg(
        long = "k",
        value_delimiter = ',',
        default_value = "5,10",
        value_name = "K,..."
    )]
    ks: Vec<usize>,
    /// Score against topic labels (lines `file-name<TAB>label`) instead of the files' lists.
    #[arg(long, value_name = "FILE.tsv")]
    labels: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// A folder of article files.
    path: PathBuf,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Bearer token the write endpoints require [default: $RELINK_TOKEN; without one, writes
    /// are refused, and only a loopback address may be used].
    #[arg(long)]
    token: Option<String>,
    /// Seconds between checks of the folder for files added, edited or removed.
    #[arg(long, default_value = "1")]
    poll: f64,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct TargetArgs {
    /// The article file whose list this is.
    file: PathBuf,
    /// Articles to pin or block (or to remove): webUrl, or path (relative to the corpus folder or
    /// to the current folder).
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<String>,
    /// The corpus FILE belongs to [default: FILE's folder].
    #[arg(long, value_name = "FOLDER")]
    corpus: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct LockArgs {
    /// The article file whose list this is.
    file: PathBuf,
    /// The corpus FILE belongs to [default: FILE's folder].
    #[arg(long, value_name = "FOLDER")]
    corpus: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct RefreshArgs {
    /// A folder of article files (.md, .txt; read recursively) or a JSON Lines file.
    path: PathBuf,
    /// Write nothing; show per file which links would be added and removed.
    #[arg(long)]
    dry_run: bool,
    /// Refresh only these articles (file paths or webUrls), still ranked against the whole corpus.
    #[arg(long, num_args = 1.., value_name = "FILE|URL")]
    only: Vec<String>,
    /// Rank every list, instead of only those a change since the last refresh can reach.
    #[arg(long, conflicts_with = "only")]
    full: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct RelatedArgs {
    /// An article file, an article's webUrl, or free text (a draft headline).
    query: String,
    /// The corpus to recommend from [default: the article file's folder, else .].
    #[arg(long, value_name = "FOLDER|FILE.jsonl")]
    corpus: Option<PathBuf>,
    /// Rank QUERY as free text even where it looks like a file name.
    #[arg(long)]
    text: bool,
    /// Publication date for free text (YYYY-MM-DD or RFC 3339); without it, time is not weighed.
    #[arg(long)]
    date: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    on: Scoring,
    /// Baselines to evaluate beside relink.
    #[arg(long, num_args = 1.., value_enum)]
    baseline: Vec<Baseline>,
    /// Evaluate a grid of ranking options: name=v1,v2,... (repeatable).
    #[arg(long, value_name = "NAME=V1,V2")]
    sweep: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

/// Options shared by every command. Unset ones come from the corpus's relink.toml, then from
/// the defaults shown here (chosen with `relink eval --sweep` on diablo4).
#[derive(Args, Clone, Default)]
struct CommonArgs {
    #[command(flatten)]
    rank: RankOverrides,
    /// Brute-force search instead of the index (same as --search exact).
    #[arg(long)]
    exact: bool,
    /// Candidate search [default: auto: exact up to 20,000 articles, HNSW above].
    #[arg(long, value_enum)]
    search: Option<SearchMode>,
    /// Sentence-transformers model folder [default: $RELINK_MODEL, ./models/all-MiniLM-L6-v2,
    /// or the per-user cache's copy].
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Model precision [default: auto: bf16 where the CPU has native bf16, else fp32].
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// Texts per model batch [default: 16].
    #[arg(long)]
    batch_size: Option<usize>,
    /// State folder for the embedding cache [default: <FOLDER>/.relink where it exists or refresh
    /// can create it, else a folder under ~/.cache/relink/state].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Hide progress bars (they are hidden anyway when stderr is not a terminal).
    #[arg(long)]
    quiet: bool,
    /// When another relink holds the corpus's lock, exit with status 2 instead of waiting.
    #[arg(long)]
    no_wait: bool,
    /// Embed with the bag-of-words test embedder instead of the model (tests and scale benches).
    #[arg(long, hide = true)]
    test_embedder: bool,
}

/// Settings resolved from the command line, relink.toml and the defaults.
struct Resolved {
    rank: RankOptions,
    engine: EngineSettings,
}

impl CommonArgs {
    /// `writes`: the command writes to the corpus folder (refresh), so its state may go there.
    fn resolve(&self, corpus: &Path, writes: bool) -> Result<Resolved> {
        let file = FileConfig::load(corpus)?;
        // Values given on the command line are checked here, so the message names the flag;
        // relink.toml's values were checked as the file was read.
        self.rank
            .validate(|name| match name {
                "k" => "--top".to_string(),
                other => format!("--{other}"),
            })
            .map_err(anyhow::Error::msg)?;
        let mut rank = RankOptions::default();
        file.rank.then(&self.rank).apply(&mut rank);
        if let Some(n) = self.batch_size {
            relink::config::check_batch_size(n)
                .map_err(|e| anyhow::anyhow!("--batch-size {n}: {e}"))?;
        }
        let search = if self.exact {
            SearchMode::Exact
        } else {
            self.search.or(file.search).unwrap_or(SearchMode::Auto)
        };
        let model = self
            .model
            .clone()
            .or(file.model)
            .unwrap_or_else(default_model_dir);
        let state_dir = match self.cache.clone().or(file.cache) {
            Some(dir) => dir,
            None => {
                let dir = default_state_dir(corpus, writes);
                if let Some(note) = relink::engine::moved_state_note(corpus, &dir, writes) {
                    eprintln!("relink: note: {note}");
                }
                dir
            }
        };
        Ok(Resolved {
            rank,
            engine: EngineSettings {
                embedder: if self.test_embedder {
                    EmbedderChoice::Hash { dim: 384 }
                } else {
                    EmbedderChoice::Model {
                        dir: model,
                        precision: self.precision.or(file.precision).unwrap_or(Precision::Auto),
                        batch_size: self
                            .batch_size
                            .or(file.batch_size)
                            .unwrap_or(DEFAULT_BATCH_SIZE),
                    }
                },
                state_dir,
                search,
                hnsw: HnswParams::default(),
                show_progress: !self.quiet,
                rules: file.rules,
            },
        })
    }
}

/// `$RELINK_MODEL`, else `./models/all-MiniLM-L6-v2`, else the per-user cache's copy (where
/// `scripts/fetch-deps.sh` puts it), else the checkout this binary was built from.
fn default_model_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RELINK_MODEL") {
        return PathBuf::from(d);
    }
    let candidates = [
        PathBuf::from("models/all-MiniLM-L6-v2"),
        relink::engine::user_cache_dir().join("all-MiniLM-L6-v2"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2"),
    ];
    candidates
        .iter()
        .find(|d| d.join("model.safetensors").is_file())
        .cloned()
        .unwrap_or_else(|| candidates[0].clone())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Refresh(args) => cmd_refresh(args),
        Command::Related(args) => cmd_related(args),
        Command::Eval(args) => cmd_eval(args),
        Command::Pin(args) => cmd_control(ControlEdit::Pin, args),
        Command::Unpin(args) => cmd_control(ControlEdit::Unpin, args),
        Command::Block(args) => cmd_control(ControlEdit::Block, args),
        Command::Unblock(args) => cmd_control(ControlEdit::Unblock, args),
        Command::Lock(args) => cmd_control(ControlEdit::Lock, args.into()),
        Command::Unlock(args) => cmd_control(ControlEdit::Unlock, args.into()),
        Command::Serve(args) => cmd_serve(args),
        Command::Tune(args) => cmd_tune(args),
        Command::Embed(args) => cmd_embed(args),
        Command::Export(args) => cmd_export(args),
        Command::Stats(args) => cmd_stats(args),
        Command::Rank(args) => cmd_rank(args),
        Command::Apply(args) => cmd_apply(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`relink ... | head`) is not an error worth a message.
            if err.chain().any(|e| {
                e.downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("relink: error: {}", error_line(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each cause only where the text before does not
/// already say it (library errors often include their source's message).
fn error_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

/// Takes the lock of `state_dir` for `relink <command> <path>`, saying who holds it while it
/// waits (or, with `no_wait`, failing with that). Returns the lock and whether it waited.
fn take_lock(
    state_dir: &Path,
    command: &str,
    path: &Path,
    no_wait: bool,
) -> Result<(relink::fsutil::FolderLock, bool)> {
    let what = format!("relink {command} {}", path.display());
    Ok(relink::engine::lock_state(
        state_dir,
        path,
        &what,
        !no_wait,
        &mut |lock, holder| eprintln!("relink: waiting for {}: held by {holder}", lock.display()),
    )?)
}

/// Reads the corpus under its state folder's lock, prints every bad file to stderr, and builds
/// the engine with the `resolved` settings. `writes`: the command writes to the corpus folder
/// (refresh). The lock is returned, to be held until the command is done.
fn build_engine(
    path: &Path,
    common: &CommonArgs,
    resolved: Resolved,
    writes: bool,
    command: &str,
) -> Result<(Engine, Resolved, relink::fsutil::FolderLock)> {
    let t = Instant::now();
    // eval and tune need every stored list, so they parse every file; the others may take unchanged
    // files from the per-file records.
    let use_records = !matches!(command, "eval" | "tune");
    let records = if use_records {
        relink::state::ArticleRecords::load(&resolved.engine.state_dir)
    } else {
        relink::state::ArticleRecords::default()
    };
    let (corpus, parsed, lock) = read_locked(path, common, &resolved, &records, writes, command)?;
    // The corpus holds its own copy of every article taken from a record.
    drop(records);
    let kept =
        relink::selective::Kept::load(&resolved.engine.state_dir, &corpus.root, &corpus.articles);
    let mut timings = Timings::default();
    timings.add("read", t);
    let mut engine = Engine::build_with(corpus, &resolved.engine, timings, kept)?;
    engine.parsed = parsed;
    for p in &engine.editorial.problems {
        eprintln!("relink: warning: {p}");
    }
    if let Some(note) = &engine.embed_stats.cache_note {
        eprintln!("relink: {}: {note}", resolved.engine.state_dir.display());
    }
    Ok((engine, resolved, lock))
}

/// Reads the corpus at `path` (files unchanged since their record from `records`) and takes
/// the lock of its state folder, reading again if another run held it. Bad files are named on
/// stderr; an oversized excerpt is warned about; with `writes`, temporary files an interrupted
/// run left are removed. Returns the corpus, how many files were parsed, and the lock.
fn read_locked(
    path: &Path,
    common: &CommonArgs,
    resolved: &Resolved,
    records: &relink::state::ArticleRecords,
    writes: bool,
    command: &str,
) -> Result<(Corpus, usize, relink::fsutil::FolderLock)> {
    let read = |path: &Path| -> Result<(Corpus, usize)> {
        let (corpus, parsed) =
            corpus::read_corpus_with_records(path, records).map_err(|e| anyhow::anyhow!("{e}"))?;
        if corpus.articles.is_empty() {
            for e in &corpus.errors {
                eprintln!("relink: skipped {e}");
            }
            bail!(
                "{}: no readable article (.md, .txt or .jsonl)",
                path.display()
            );
        }
        Ok((corpus, parsed))
    };
    let (mut corpus, mut parsed) = read(path)?;
    let (lock, waited) = take_lock(&resolved.engine.state_dir, command, path, common.no_wait)?;
    if waited {
        // The other run may have changed the files: read them as they are now.
        (corpus, parsed) = read(path)?;
    }
    for e in &corpus.errors {
        eprintln!("relink: skipped {e}");
    }
    for a in &corpus.articles {
        if a.title_is_oversized() {
            eprintln!(
                "relink: warning: {}: the title is {} bytes; related entries carry its first {} characters",
                a.display_path(),
                a.title.len(),
                relink::article::MAX_ENTRY_TITLE
            );
        }
        if a.excerpt_is_oversized() {
            eprintln!(
                "relink: warning: {}: the excerpt is {} bytes; related entries carry its first {} characters",
                a.display_path(),
                a.excerpt.as_deref().map_or(0, str::len),
                relink::article::MAX_ENTRY_EXCERPT
            );
        }
    }
    if writes {
        let removed = relink::fsutil::remove_stale_temps(&corpus.stale_temps);
        if removed > 0 {
            eprintln!("relink: removed {removed} temporary files left by an interrupted run");
        }
    }
    Ok((corpus, parsed, lock))
}

/// `relink refresh`: rewrites every list that changed and prints a summary. Exit status 1 when
/// any file could not be read or written (after the others are done).
fn cmd_refresh(args: RefreshArgs) -> Result<ExitCode> {
    let start = Instant::now();
    let resolved = args.common.resolve(&args.path, !args.dry_run)?;
    let settings = refresh_settings(&resolved)?;
    if let Some(n) = unchanged_since_last_refresh(&args, &resolved, &settings)? {
        let mut out = io::stdout().lock();
        writeln!(out, "relink refresh {}", args.path.display())?;
        writeln!(
            out,
            "  articles   {n} files as the last refresh left them: none read, nothing to rank"
        )?;
        writeln!(out, "  lists      0 ranked: 0 changed, {n} unchanged")?;
        writeln!(
            out,
            "  time       check {:.2}s (total {:.2}s)",
            start.elapsed().as_secs_f64(),
            start.elapsed().as_secs_f64()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let (mut engine, resolved, _lock) =
        build_engine(&args.path, &args.common, resolved, !args.dry_run, "refresh")?;
    let (selected, unknown) = relink::refresh::select(&engine.corpus.articles, &args.only);
    for name in &unknown {
        eprintln!(
            "relink: --only {name}: no article of {} has this path or URL",
            args.path.display()
        );
    }
    let t = Instant::now();
    let (report, snapshot) = if args.only.is_empty() {
        let (report, snapshot) = relink::refresh::refresh_all(
            &engine,
            &resolved.rank,
            &settings,
            args.full,
            args.dry_run,
            !args.common.quiet,
        );
        (report, Some(snapshot))
    } else {
        let report = relink::refresh::refresh(
            &engine,
            &resolved.rank,
            &selected,
            args.dry_run,
            !args.common.quiet,
        );
        (report, None)
    };
    if report.timings.0.is_empty() {
        engine
            .timings
            .add(if args.dry_run { "rank" } else { "rank+write" }, t);
    } else {
        engine.timings.0.extend(report.timings.0.iter().copied());
    }
    for e in &report.write_errors {
        eprintln!("relink: not written: {e}");
    }
    if !args.dry_run {
        for warning in
            relink::refresh::remember_written(&engine.corpus, &report, &resolved.engine.state_dir)
        {
            eprintln!("relink: warning: {warning}");
        }
    }

    if let (Some(snapshot), false) = (&snapshot, args.dry_run) {
        let t = Instant::now();
        let state_dir = &resolved.engine.state_dir;
        if let Err(e) = snapshot.save(state_dir) {
            eprintln!(
                "relink: warning: {}: {e}",
                state_dir.join(relink::selective::SNAPSHOT).display()
            );
        }
        engine.timings.add("save", t);
    }

    let mut out = io::stdout().lock();
    if args.dry_run {
        for c in &report.changes {
            writeln!(
                out,
                "{}: +{} -{}{}",
                c.file,
                c.added.len(),
                c.removed.len(),
                if c.reordered { " (reordered)" } else { "" }
            )?;
            for t in &c.added {
                writeln!(out, "  + {t}")?;
            }
            for t in &c.removed {
                writeln!(out, "  - {t}")?;
            }
        }
    }
    let e = &engine.embed_stats;
    let skipped = engine.corpus.errors.len();
    writeln!(
        out,
        "relink refresh {}{}",
        args.path.display(),
        if args.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    )?;
    let unparsed = (engine.corpus.articles.len() + skipped).saturating_sub(engine.parsed);
    writeln!(
        out,
        "  articles   {} read, {} skipped{}{}",
        engine.corpus.articles.len(),
        skipped,
        if skipped > 0 {
            " (bad files, listed above)"
        } else {
            ""
        },
        if unparsed > 0 {
            format!(
                "; {} parsed, {unparsed} unchanged since the last run",
                engine.parsed
            )
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "  embedding  {} embedded, {} from the cache{}",
        e.embedded,
        e.cached,
        if e.model_loaded {
            ""
        } else {
            " (model not loaded)"
        }
    )?;
    writeln!(
        out,
        "  search     {} over {} articles",
        if engine.graph.kept && engine.graph.added + engine.graph.masked == 0 {
            "HNSW (graph kept from the last run)".to_string()
        } else if engine.graph.kept {
            format!(
                "HNSW (graph kept from the last run: {} texts added, {} masked)",
                engine.graph.added, engine.graph.masked
            )
        } else if engine.index.is_hnsw() {
            "HNSW".to_string()
        } else {
            "exact".to_string()
        },
        engine.index.len()
    )?;
    writeln!(
        out,
        "  lists      {} ranked{}: {} {}, {} unchanged{}{}",
        report.refreshed,
        if report.kept > 0 {
            format!(
                ", {} kept (no change since the last refresh reaches them)",
                report.kept
            )
        } else {
            String::new()
        },
        report.changes.len(),
        if args.dry_run {
            "would change"
        } else {
            "changed"
        },
        report.unchanged,
        if report.locked > 0 {
            format!(" ({} locked)", report.locked)
        } else {
            String::new()
        },
        if report.write_errors.is_empty() {
            String::new()
        } else {
            format!(", {} not written", report.write_errors.len())
        }
    )?;
    let bad = skipped + report.write_errors.len() + unknown.len();
    if !args.dry_run {
        // What the next run starts from: the files' stamps as left, and the per-file records.
        let t = Instant::now();
        // A pin or block naming no article is reported on every run until it is fixed.
        let clean = bad == 0 && args.only.is_empty() && engine.editorial.problems.is_empty();
        remember_clean_refresh(&args.path, &engine, &report, &resolved, &settings, clean);
        save_article_records(&engine, &report, &resolved);
        engine.timings.add("records", t);
    }
    let stages: Vec<String> = engine
        .timings
        .0
        .iter()
        .map(|(name, d)| format!("{name} {:.2}s", d.as_secs_f64()))
        .collect();
    writeln!(
        out,
        "  time       {} (total {:.2}s)",
        stages.join(", "),
        start.elapsed().as_secs_f64()
    )?;
    // The process ends next, and the system takes its memory back at once, instead of a million
    // articles, their vectors and the graph being freed one allocation at a time.
    std::mem::forget(engine);
    Ok(if bad > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What a refresh's lists depend on besides the files: relink's version, the embedder's
/// identity, the search and the ranking options.
fn refresh_settings(resolved: &Resolved) -> Result<String> {
    let e = &resolved.engine;
    Ok(serde_json::json!({
        "relink": env!("CARGO_PKG_VERSION"),
        "model": e.embedder.model_id()?,
        "analyzer": relink::lexical::ANALYZER,
        "search": e.search,
        "hnsw": [e.hnsw.m, e.hnsw.ef_construction, e.hnsw.ef_search],
        "options": resolved.rank,
        "rules": e.rules,
    })
    .to_string())
}

/// A rerun of a whole folder whose files are all as the last clean refresh left them (same
/// names, same stamps) and whose settings are the same computes the lists the files already
/// hold: it is answered from the stamps alone, without reading a file. Returns the number of
/// files then, else `None` (the full run follows). Holds the lock while it looks.
fn unchanged_since_last_refresh(
    args: &RefreshArgs,
    resolved: &Resolved,
    settings: &str,
) -> Result<Option<usize>> {
    let state_dir = &resolved.engine.state_dir;
    if !args.only.is_empty() || args.full {
        return Ok(None);
    }
    let Some(saved) = relink::state::last_refresh(state_dir) else {
        return Ok(None);
    };
    // A record of written lists that was lost or damaged is rebuilt by a refresh of the whole
    // folder, which the shortcut would skip.
    if relink::state::WrittenLists::load_checked(state_dir).1 != relink::state::RecordState::Whole {
        return Ok(None);
    }
    let Some((files, stale_temps, walk_errors)) = corpus::list_article_files(&args.path) else {
        return Ok(None);
    };
    if walk_errors > 0 || files.is_empty() {
        return Ok(None);
    }
    let (_lock, _) = take_lock(state_dir, "refresh", &args.path, args.common.no_wait)?;
    let stamps: Option<Vec<(PathBuf, relink::fsutil::FileStamp)>> = {
        use rayon::prelude::*;
        files
            .par_iter()
            .map(|f| {
                relink::fsutil::FileStamp::now(f)
                    .ok()
                    .map(|s| (f.clone(), s))
            })
            .collect()
    };
    let Some(stamps) = stamps else {
        return Ok(None);
    };
    if relink::state::refresh_identity(settings, &args.path, &stamps) != saved {
        return Ok(None);
    }
    if !args.dry_run {
        let removed = relink::fsutil::remove_stale_temps(&stale_temps);
        if removed > 0 {
            eprintln!("relink: removed {removed} temporary files left by an interrupted run");
        }
    }
    Ok(Some(files.len()))
}

/// After a refresh, saves what the folder looks like when every list was computed and written
/// (`clean`) and no file changed meanwhile, so that the next run with nothing new can stop at
/// the stamps; otherwise forgets it.
fn remember_clean_refresh(
    path: &Path,
    engine: &Engine,
    report: &relink::refresh::RefreshReport,
    resolved: &Resolved,
    settings: &str,
    clean: bool,
) {
    let state_dir = &resolved.engine.state_dir;
    let identity = clean
        .then(|| {
            let (files, _, walk_errors) = corpus::list_article_files(path)?;
            let articles = &engine.corpus.articles;
            if walk_errors > 0 || files.len() != articles.len() {
                return None;
            }
            let written: std::collections::HashMap<usize, relink::fsutil::FileStamp> = report
                .stamps
                .iter()
                .map(|&(i, (stamp, _))| (i, stamp))
                .collect();
            use rayon::prelude::*;
            let pairs: Option<Vec<_>> = files
                .par_iter()
                .zip(articles.par_iter())
                .enumerate()
                .map(|(i, (file, a))| {
                    let expected = written.get(&i).copied().or(a.stamp);
                    let now = relink::fsutil::FileStamp::now(file).ok();
                    // A file changed after relink read or wrote it: the next run must look.
                    if a.source.path() != file.as_path() || now.is_none() || now != expected {
                        return None;
                    }
                    Some((file.clone(), now?))
                })
                .collect();
            Some(relink::state::refresh_identity(settings, path, &pairs?))
        })
        .flatten();
    if let Err(e) = relink::state::save_last_refresh(state_dir, identity.as_deref()) {
        eprintln!(
            "relink: warning: {}: {e}",
            state_dir.join(relink::state::LAST_REFRESH).display()
        );
    }
}

/// Saves the per-file records of a folder corpus, with the new stamps, hashes and lists of the
/// files just written, so that the next run parses only files changed after this one.
fn save_article_records(
    engine: &Engine,
    report: &relink::refresh::RefreshReport,
    resolved: &Resolved,
) {
    if let Err(e) = relink::refresh::save_records(engine, report, &resolved.engine.state_dir) {
        eprintln!("relink: warning: {e}");
    }
}

/// `relink related`: prints the list refresh would write for one article, or for free text.
fn cmd_related(args: RelatedArgs) -> Result<ExitCode> {
    let as_file = Path::new(&args.query);
    let is_url = args.query.starts_with("http://") || args.query.starts_with("https://");
    let is_file = !args.text && !is_url && as_file.is_file();
    if !args.text && !is_url && !is_file {
        if as_file.exists() {
            bail!("{}: not a regular file", args.query);
        }
        let has_article_extension = as_file.extension().is_some_and(|e| {
            ["md", "txt", "jsonl"]
                .iter()
                .any(|x| e.eq_ignore_ascii_case(x))
        });
        if !args.query.contains(char::is_whitespace)
            && (args.query.contains('/') || has_article_extension)
        {
            bail!(
                "{}: no such file (to rank these words as free text, add --text)",
                args.query
            );
        }
    }
    let corpus_path = match (&args.corpus, is_file) {
        (Some(c), _) => c.clone(),
        (None, true) => relink::config::config_dir(as_file),
        (None, false) => PathBuf::from("."),
    };
    let resolved = args.common.resolve(&corpus_path, false)?;
    let (engine, resolved, _lock) =
        build_engine(&corpus_path, &args.common, resolved, false, "related")?;
    let ranker = engine.ranker(resolved.rank.clone());
    let (selected, _) =
        relink::refresh::select(&engine.corpus.articles, std::slice::from_ref(&args.query));
    let mut locked = false;
    let (title, list) = if let Some(&i) = selected.first() {
        locked = engine.editorial.is_locked(i);
        (
            engine.corpus.articles[i].title.clone(),
            ranker.rank_article(i),
        )
    } else if is_file || is_url {
        bail!(
            "{}: not an article of {}",
            args.query,
            corpus_path.display()
        );
    } else {
        let date = args.date.as_deref().map(parse_date).transpose()?;
        let list =
            engine.rank_text(&args.query, date, &resolved.rank, &resolved.engine.embedder)?;
        (args.query.clone(), list)
    };
    print_related(&engine, &title, &list, locked, args.json)?;
    Ok(ExitCode::SUCCESS)
}

impl From<LockArgs> for TargetArgs {
    fn from(a: LockArgs) -> TargetArgs {
        TargetArgs {
            file: a.file,
            targets: Vec::new(),
            corpus: a.corpus,
            common: a.common,
        }
    }
}

/// `relink pin|unpin|block|unblock|lock|unlock`: edits the article's `relink:` map (and only
/// it) under the corpus's lock, then, except for `lock`, refreshes the article's list as
/// `refresh --only FILE` does.
fn cmd_control(edit: ControlEdit, args: TargetArgs) -> Result<ExitCode> {
    let corpus_path = args
        .corpus
        .clone()
        .unwrap_or_else(|| relink::config::config_dir(&args.file));
    let resolved = args.common.resolve(&corpus_path, true)?;
    let state_dir = resolved.engine.state_dir.clone();
    let command = edit.name();
    let message = {
        let (lock, _) = take_lock(&state_dir, command, &args.file, args.common.no_wait)?;
        let records = relink::state::ArticleRecords::load(&state_dir);
        let (corpus, _) = corpus::read_corpus_with_records(&corpus_path, &records)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let file = args.file.display().to_string();
        let (found, _) = relink::refresh::select(&corpus.articles, std::slice::from_ref(&file));
        let Some(&i) = found.first() else {
            if let Some(e) = corpus
                .errors
                .iter()
                .find(|e| e.path.canonicalize().ok() == args.file.canonicalize().ok())
            {
                bail!("{e}");
            }
            bail!("{file}: not an article of {}", corpus_path.display());
        };
        let (control, done) =
            relink::editorial::edit_control(&corpus.root, &corpus.articles, i, edit, &args.targets)
                .map_err(anyhow::Error::msg)?;
        let written = relink::corpus::write_control_in(&corpus.root, &corpus.articles[i], &control)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        drop(lock);
        format!(
            "relink {command} {file}: {}{}{}; now {} pinned, {} blocked{}",
            edit.done(),
            if done.is_empty() { "" } else { " " },
            done.join(", "),
            control.pin.len(),
            control.block.len(),
            match (written.is_some(), control.lock) {
                (false, true) => ", locked (no change)",
                (false, false) => " (no change)",
                (true, true) => ", locked",
                (true, false) => "",
            }
        )
    };
    println!("{message}");
    if edit == ControlEdit::Lock {
        return Ok(ExitCode::SUCCESS);
    }
    cmd_refresh(RefreshArgs {
        path: corpus_path,
        dry_run: false,
        only: vec![args.file.display().to_string()],
        full: false,
        common: args.common,
    })
}

/// `relink tune`: splits the archive by time, searches the ranking options on the older part,
/// prints the held-out metrics of the defaults, the options in effect and the tuned ones, and
/// with `--write` keeps the tuned options in relink.toml.
fn cmd_tune(args: TuneArgs) -> Result<ExitCode> {
    use relink::tune;
    let started = Instant::now();
    let ks = args.on.cut_offs()?;
    let resolved = args.common.resolve(&args.on.path, false)?;
    let (engine, resolved, _lock) =
        build_engine(&args.on.path, &args.common, resolved, false, "tune")?;
    let Some((references, _, _)) = references_for(
        &engine,
        args.on.labels.as_deref(),
        &resolved.engine.state_dir,
        &args.on.path,
    )?
    else {
        return Ok(ExitCode::from(1));
    };
    let objective = if args.on.labels.is_some() {
        format!("precision@{}", ks[0])
    } else {
        format!("recall@{}", ks[0])
    };
    let dates: Vec<_> = engine
        .corpus
        .articles
        .iter()
        .map(|a| a.published_date_time)
        .collect();
    let split = tune::split(&dates, tune::HELD_OUT);
    let train_refs = tune::restrict(&references, &split.train);
    let test_refs = tune::only(&references, &split.test);
    let scored = |r: &[Option<eval::Reference>]| r.iter().filter(|r| r.is_some()).count();
    if scored(&train_refs) == 0 || scored(&test_refs) == 0 {
        bail!(
            "{}: too few dated articles with references to tune ({} older, {} newest scored)",
            args.on.path.display(),
            scored(&train_refs),
            scored(&test_refs)
        );
    }
    let train = tune::training_engine(&engine.corpus, &split, &resolved.engine)?;
    let t = Instant::now();
    let found = tune::search(&train, &train_refs, &resolved.rank, &ks, &objective);
    let search_s = t.elapsed().as_secs_f64();
    let defaults = RankOptions {
        k: resolved.rank.k,
        ..RankOptions::default()
    };
    let held = |o: &RankOptions| tune::held_out(&engine, &test_refs, o, &ks);
    let at_defaults = held(&defaults);
    // Without relink.toml or options, the options in effect are the defaults: measured once.
    let at_current = if resolved.rank == defaults {
        at_defaults.clone()
    } else {
        held(&resolved.rank)
    };
    let at_tuned = held(&found.options);
    let changed: Vec<(String, String, String)> = tune::GRID
        .iter()
        .filter_map(|(name, _)| {
            let was = tune::option_value(&resolved.rank, name);
            let now = tune::option_value(&found.options, name);
            (was != now).then(|| (name.to_string(), was, now))
        })
        .collect();
    let mut written = None;
    if args.write {
        let dir = relink::config::config_dir(&args.on.path);
        let file = dir.join(relink::config::FILE_NAME);
        let text = match relink::fsutil::read_regular_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| file.display().to_string()),
        };
        let keys: Vec<(String, String)> = tune::GRID
            .iter()
            .map(|(name, _)| (name.to_string(), tune::option_value(&found.options, name)))
            .collect();
        let new = tune::set_toml_keys(&text, &keys);
        relink::fsutil::write_new(&file, new.as_bytes())
            .with_context(|| file.display().to_string())?;
        written = Some(file);
    }
    let metrics_json = |m: &(std::collections::BTreeMap<String, f64>, eval::PerArticle)| {
        serde_json::to_value(&m.0).unwrap_or_default()
    };
    let mut out = io::stdout().lock();
    if args.json {
        let options: std::collections::BTreeMap<String, String> = tune::GRID
            .iter()
            .map(|(name, _)| (name.to_string(), tune::option_value(&found.options, name)))
            .collect();
        let json = serde_json::json!({
            "split": {
                "by": "publishedDateTime",
                "held_out_share": tune::HELD_OUT,
                "cut": split.cut.map(relink::article::format_timestamp),
                "train": split.train.len(),
                "train_scored": scored(&train_refs),
                "test": split.test.len(),
                "test_scored": scored(&test_refs),
                "undated": split.undated,
            },
            "objective": objective,
            "defaults": metrics_json(&at_defaults),
            "current": metrics_json(&at_current),
            "tuned": metrics_json(&at_tuned),
            "tuned_vs_defaults": tune::difference(&at_defaults, &at_tuned),
            "options": options,
            "changed": changed.iter().map(|(n, was, now)| serde_json::json!({"option": n, "from": was, "to": now})).collect::<Vec<_>>(),
            "search": {
                "passes": found.passes,
                "evaluations": found.evaluations,
                "seconds": search_s,
                "train_objective": {"start": found.start, "tuned": found.best},
                "steps": found.steps,
            },
            "written": written.as_ref().map(|p| p.display().to_string()),
        });
        write_json(&mut out, &json)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "relink tune {}: split by publication time at {}: {} older articles to tune on ({} scored), {} newest held out ({} scored){}",
        args.on.path.display(),
        split
            .cut
            .map(relink::article::format_timestamp)
            .unwrap_or_default(),
        thousands(split.train.len()),
        thousands(scored(&train_refs)),
        thousands(split.test.len()),
        thousands(scored(&test_refs)),
        if split.undated > 0 {
            format!(", {} undated left out", split.undated)
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "search: {} passes, {} evaluations in {:.1}s, {objective} on the older part {:.4} -> {:.4}",
        found.passes, found.evaluations, search_s, found.start, found.best
    )?;
    let diff = tune::difference(&at_defaults, &at_tuned);
    writeln!(
        out,
        "held out (newest {:.0}%)   {:>9}  {:>9}  {:>9}   tuned − defaults [95%]",
        tune::HELD_OUT * 100.0,
        "defaults",
        "current",
        "tuned"
    )?;
    for name in eval::columns(&ks).iter().filter(|c| *c != "coverage") {
        let d = diff.get(name).copied().unwrap_or([f64::NAN; 3]);
        writeln!(
            out,
            "  {name:<22} {:>9.4}  {:>9.4}  {:>9.4}   {:+.4} [{:+.4}, {:+.4}]{}",
            at_defaults.0[name],
            at_current.0[name],
            at_tuned.0[name],
            d[0],
            d[1],
            d[2],
            if d[1] <= 0.0 && d[2] >= 0.0 {
                " tie"
            } else {
                ""
            }
        )?;
    }
    if changed.is_empty() {
        writeln!(out, "options: none changed")?;
    } else {
        let list: Vec<String> = changed
            .iter()
            .map(|(n, was, now)| format!("{n} {was} -> {now}"))
            .collect();
        writeln!(out, "options: {}", list.join(", "))?;
    }
    match &written {
        Some(file) => writeln!(out, "written to {}", file.display())?,
        None => writeln!(out, "(add --write to keep them in relink.toml)")?,
    }
    writeln!(out, "time {:.1}s", started.elapsed().as_secs_f64())?;
    Ok(ExitCode::SUCCESS)
}

/// `relink embed --stdin`: embeds every article line of stdin to stdout, in order; bad lines
/// are named on stderr and skipped (status 1 at the end). Options come from the command line
/// and ./relink.toml.
fn cmd_embed(args: EmbedArgs) -> Result<ExitCode> {
    let resolved = args.common.resolve(Path::new("."), false)?;
    let cache = args.common.cache.clone();
    let stdin = io::stdin().lock();
    let stdout = io::BufWriter::new(io::stdout().lock());
    // A closed pipe ends quietly: main() treats it so, whatever the command.
    let summary =
        relink::worker::embed_lines(stdin, stdout, &resolved.engine.embedder, cache.as_deref())?;
    for bad in &summary.bad {
        eprintln!("relink: {bad}");
    }
    if !args.common.quiet {
        eprintln!(
            "relink embed: {} articles: {} embedded, {} from the cache; {} bad lines",
            summary.articles,
            summary.embedded,
            summary.cached,
            summary.bad.len()
        );
    }
    Ok(if summary.bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Exit status of a worker: 1 when any input line was bad (the others were done).
fn worker_status(bad: &[String]) -> ExitCode {
    for b in bad {
        eprintln!("relink: {b}");
    }
    if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `relink export`: the corpus as JSON Lines on stdout.
fn cmd_export(args: ExportArgs) -> Result<ExitCode> {
    let corpus = corpus::read_corpus(&args.path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut bad: Vec<String> = corpus
        .errors
        .iter()
        .map(|e| format!("skipped {e}"))
        .collect();
    let stdout = io::BufWriter::new(io::stdout().lock());
    let (_, more) = relink::worker::export_corpus(&corpus, stdout)?;
    bad.extend(more.into_iter().map(|e| format!("skipped {e}")));
    Ok(worker_status(&bad))
}

/// `relink stats --stdin`: corpus-wide statistics of the articles on stdin.
fn cmd_stats(args: StatsArgs) -> Result<ExitCode> {
    let resolved = args.common.resolve(Path::new("."), false)?;
    let choice = &resolved.engine.embedder;
    let (stats, bad) =
        relink::worker::stats_lines(io::stdin().lock(), &choice.model_id()?, choice.dim()?)?;
    let json = serde_json::to_string(&stats)? + "\n";
    match &args.output {
        Some(path) => relink::fsutil::write_new(path, json.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        None => io::stdout().lock().write_all(json.as_bytes())?,
    }
    if !args.common.quiet {
        eprintln!(
            "relink stats: {} articles, {} title terms, {} quality values; {} bad lines",
            stats.articles,
            stats.df.len(),
            stats.qualities.len(),
            bad.len()
        );
    }
    Ok(worker_status(&bad))
}

/// `relink rank --stdin --stats FILE`: the lists of a shard.
fn cmd_rank(args: RankArgs) -> Result<ExitCode> {
    let resolved = args.common.resolve(Path::new("."), false)?;
    let stats = relink::worker::CorpusStats::load(
        &args.stats,
        &resolved.engine.embedder.model_id()?,
        resolved.engine.embedder.dim()?,
    )
    .map_err(anyhow::Error::msg)?;
    let stdout = io::BufWriter::new(io::stdout().lock());
    let summary = relink::worker::rank_lines(io::stdin().lock(), stdout, &stats, &resolved.rank)?;
    if !args.common.quiet {
        eprintln!(
            "relink rank: {} articles, {} lists; {} bad lines",
            summary.articles,
            summary.lists,
            summary.bad.len()
        );
    }
    Ok(worker_status(&summary.bad))
}

/// `relink apply LISTS FOLDER`: writes lists ranked elsewhere. Every line is checked before
/// anything is written: a lists file that names an article the folder does not hold (another
/// corpus's lists, a stale job) writes nothing.
fn cmd_apply(args: ApplyArgs) -> Result<ExitCode> {
    let start = Instant::now();
    let resolved = args.common.resolve(&args.folder, !args.dry_run)?;
    let text = if args.lists == Path::new("-") {
        io::read_to_string(io::stdin().lock())?
    } else if args.lists.is_dir() {
        // Spark's output: the part files, in order.
        let mut parts: Vec<PathBuf> = std::fs::read_dir(&args.lists)
            .with_context(|| format!("reading {}", args.lists.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
            })
            .collect();
        parts.sort();
        let mut text = String::new();
        for p in &parts {
            text += &relink::fsutil::read_regular_string(p)
                .with_context(|| format!("reading {}", p.display()))?;
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
        text
    } else {
        relink::fsutil::read_regular_string(&args.lists)
            .with_context(|| format!("reading {}", args.lists.display()))?
    };
    let records = relink::state::ArticleRecords::load(&resolved.engine.state_dir);
    let (corpus, _, _lock) = read_locked(
        &args.folder,
        &args.common,
        &resolved,
        &records,
        !args.dry_run,
        "apply",
    )?;
    let position: std::collections::HashMap<String, usize> = corpus
        .articles
        .iter()
        .enumerate()
        .map(|(i, a)| (relink::state::article_key(&corpus.root, a), i))
        .collect();
    let (lists, bad) = relink::worker::read_lists(&text, &position);
    if !bad.is_empty() {
        for b in bad.iter().take(20) {
            eprintln!("relink: {}:{b}", args.lists.display());
        }
        bail!(
            "{}: {} bad lines; nothing written",
            args.lists.display(),
            bad.len()
        );
    }
    let editorial = relink::editorial::Editorial::resolve(
        &corpus.root,
        &corpus.articles,
        &resolved.engine.rules,
    );
    let listed = lists.len();
    let report =
        relink::refresh::apply(&corpus, &editorial, lists, args.dry_run, !args.common.quiet);
    for e in &report.write_errors {
        eprintln!("relink: not written: {e}");
    }
    if !args.dry_run {
        for w in relink::refresh::remember_written(&corpus, &report, &resolved.engine.state_dir) {
            eprintln!("relink: warning: {w}");
        }
    }
    let mut out = io::stdout().lock();
    if args.dry_run {
        for c in &report.changes {
            writeln!(out, "{}: +{} -{}", c.file, c.added.len(), c.removed.len())?;
        }
    }
    writeln!(
        out,
        "relink apply {} {}{}",
        args.lists.display(),
        args.folder.display(),
        if args.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "  lists      {listed} read: {} changed, {} unchanged{}; {} articles without a list left as they are",
        report.changes.len(),
        report.unchanged,
        if report.locked > 0 {
            format!(" ({} locked)", report.locked)
        } else {
            String::new()
        },
        corpus.articles.len() - listed
    )?;
    writeln!(out, "  time       {:.2}s", start.elapsed().as_secs_f64())?;
    Ok(
        if report.write_errors.is_empty() && corpus.errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// `relink serve`: loads the corpus once and answers over HTTP until Ctrl-C.
fn cmd_serve(args: ServeArgs) -> Result<ExitCode> {
    let resolved = args.common.resolve(&args.path, true)?;
    if !args.path.is_dir() {
        bail!("{}: not a folder of article files", args.path.display());
    }
    if !(0.05..=3600.0).contains(&args.poll) {
        bail!("--poll {}: out of range: 0.05 to 3600 seconds", args.poll);
    }
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("RELINK_TOKEN").ok())
        .filter(|t| !t.is_empty());
    let mut settings = resolved.engine;
    settings.show_progress = false;
    relink::serve::run(
        relink::serve::Config {
            corpus: args.path.clone(),
            addr: args.addr,
            token,
            options: resolved.rank,
            settings,
            poll: std::time::Duration::from_secs_f64(args.poll),
        },
        |_| {},
    )
    .map_err(anyhow::Error::msg)?;
    Ok(ExitCode::SUCCESS)
}

fn parse_date(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(d.with_timezone(&chrono::Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("--date {s}: expected YYYY-MM-DD or RFC 3339"))?;
    Ok(day.and_hms_opt(12, 0, 0).unwrap().and_utc())
}

/// Prints a list as `relink related` does. `locked`: the article's list is locked (refresh
/// keeps what its file holds).
fn print_related(
    engine: &Engine,
    title: &str,
    list: &[Scored],
    locked: bool,
    json: bool,
) -> Result<()> {
    let mut out = io::stdout().lock();
    if json {
        write_json(&mut out, &engine.related_json(title, list, locked))?;
        return Ok(());
    }
    writeln!(
        out,
        "related to: {title}{}",
        if locked {
            " (locked: refresh keeps the list its file holds)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "{:>4}  {:>6}  {:>6}  {:>6}  {:>5}  {:>7}  {:<10}  {:<20}  title",
        "rank", "score", "cosine", "bm25", "time", "quality", "date", "provider"
    )?;
    for (r, s) in list.iter().enumerate() {
        let a = &engine.corpus.articles[s.index];
        let date = a
            .published_date_time
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "-".into());
        let provider = a
            .provider
            .as_ref()
            .and_then(|p| p.name.clone().or(p.domain.clone()))
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:>4}  {:>6.3}  {:>6.3}  {:>6.3}  {:>5.2}  {:>7.2}  {:<10}  {:<20}  {}",
            if s.pinned {
                format!("pin{}", r + 1)
            } else {
                (r + 1).to_string()
            },
            s.score,
            s.cosine,
            s.lexical,
            s.time,
            s.quality,
            date,
            truncate(&provider, 20),
            a.title
        )?;
    }
    if list.is_empty() {
        writeln!(out, "  (no article is similar enough)")?;
    }
    Ok(())
}

/// Pretty JSON and a final newline.
fn write_json(out: &mut impl Write, value: &impl serde::Serialize) -> Result<()> {
    // Back to the io::Error it wraps, so that a closed pipe is recognised as one.
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// `n` with thousands separated by commas, as the README's figures are.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// `relink eval`: prints relink's metrics beside the baselines (or a sweep), as a table or JSON,
/// and optionally an HTML report.
/// What `eval` and `tune` score against: topic labels from `labels`, else the lists the files
/// hold, less those relink wrote. `None` (after saying why) when every list is relink's.
#[allow(clippy::type_complexity)]
fn references_for(
    engine: &Engine,
    labels: Option<&Path>,
    state_dir: &Path,
    path: &Path,
) -> Result<
    Option<(
        Vec<Option<eval::Reference>>,
        Option<eval::LinkStats>,
        Option<eval::ReferenceLists>,
    )>,
> {
    if let Some(labels) = labels {
        let text = relink::fsutil::read_regular_string(labels)
            .with_context(|| format!("{}", labels.display()))?;
        let refs =
            eval::references_from_labels(&engine.corpus.articles, &engine.corpus.root, &text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", labels.display()))?;
        return Ok(Some((refs, None, None)));
    }
    let (written, record) = relink::state::WrittenLists::load_checked(state_dir);
    let problem = match &record {
        relink::state::RecordState::Whole => None,
        relink::state::RecordState::Lost { evidence } => Some(format!(
            "is missing, though {} says relink has refreshed this corpus",
            evidence.display()
        )),
        relink::state::RecordState::Damaged { reason } => Some(format!("is damaged: {reason}")),
    };
    if let Some(problem) = problem {
        bail!(
            "{}: the record of the lists relink wrote {problem}. Without it, eval cannot tell \
             relink's own lists from an editor's, and would grade relink against itself. A \
             refresh of the whole folder (`relink refresh {}`) records relink's lists again; or \
             score against topic labels (--labels FILE.tsv), or evaluate a copy of the corpus \
             made before its first refresh.",
            state_dir.join(relink::state::WRITTEN_LISTS).display(),
            path.display()
        );
    }
    let articles = &engine.corpus.articles;
    let by_relink = |i: usize| {
        let a = &articles[i];
        let key = relink::state::article_key(&engine.corpus.root, a);
        written.is_relinks(&key, a.related.as_deref().unwrap_or(&[]))
    };
    let (refs, links, lists) = eval::references_from_related(articles, &by_relink);
    if lists.written_by_relink > 0 {
        eprintln!(
            "relink: {} of {} reference lists were written by relink and are not scored",
            thousands(lists.written_by_relink),
            thousands(lists.written_by_relink + lists.human)
        );
    }
    if lists.human == 0 && lists.written_by_relink > 0 {
        eprintln!(
            "relink: error: {}: nothing left to score: every list in the files is one relink wrote. \
             Score against topic labels (--labels FILE.tsv), or run eval on a copy of the corpus made before its first refresh.",
            path.display()
        );
        return Ok(None);
    }
    Ok(Some((refs, Some(links), Some(lists))))
}

fn cmd_eval(args: EvalArgs) -> Result<ExitCode> {
    let ks = args.on.cut_offs()?;
    let sweep: Vec<(String, Vec<String>)> = args
        .sweep
        .iter()
        .map(|s| eval::parse_sweep(s).map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let resolved = args.common.resolve(&args.on.path, false)?;
    let state_dir = resolved.engine.state_dir.clone();
    let report_allowed = |engine: Option<&Engine>| -> Result<()> {
        let Some(path) = &args.report else {
            return Ok(());
        };
        let mut files: Box<dyn Iterator<Item = &Path>> = match engine {
            Some(e) => Box::new(
                std::iter::once(args.on.path.as_path())
                    .chain(e.corpus.articles.iter().map(|a| a.source.path())),
            ),
            None => Box::new(std::iter::once(args.on.path.as_path())),
        };
        let own = relink::engine::corpus_folder(&args.on.path).join(".relink");
        relink::report::check_destination(path, &[&state_dir, &own], &mut files)
            .map_err(|e| anyhow::anyhow!("--report {e}"))
    };
    report_allowed(None)?;
    let (engine, resolved, _lock) =
        build_engine(&args.on.path, &args.common, resolved, false, "eval")?;
    let Some((references, links, reference_lists)) = references_for(
        &engine,
        args.on.labels.as_deref(),
        &resolved.engine.state_dir,
        &args.on.path,
    )?
    else {
        return Ok(ExitCode::from(1));
    };
    let scored_ids: Vec<usize> = references
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_some())
        .map(|(i, _)| i)
        .collect();
    if scored_ids.is_empty() {
        bail!(
            "{}: no article has a reference to score against ({})",
            args.on.path.display(),
            if args.on.labels.is_some() {
                "no labelled article shares its label with another"
            } else {
                "no related list points at another article of the corpus; use --labels"
            }
        );
    }
    let model_id = engine.embed_stats.model_id.clone();
    // Lists with pins are graded with their pins (they are what refresh writes); locked lists
    // are counted, and graded like any other where an editor's list is the reference.
    let locked = engine.editorial.locked.iter().filter(|&&l| l).count();
    // What every JSON output starts with; scripts rely on these keys.
    let json_header = match serde_json::json!({
        "articles_scored": scored_ids.len(),
        "model": model_id,
        "version": env!("CARGO_PKG_VERSION"),
        "corpus": { "path": args.on.path.display().to_string(), "articles": engine.corpus.articles.len(), "skipped": engine.corpus.errors.len() },
        "k": ks,
        "links": links,
        "reference_lists": reference_lists,
        "editorial": { "locked": locked, "pinned": engine.editorial.pins.len(), "blocking": engine.editorial.blocks.len() },
    }) {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    };
    let t = Instant::now();
    let mut out = io::stdout().lock();
    if !sweep.is_empty() {
        let grid = eval::grid(&resolved.rank, &sweep).map_err(anyhow::Error::msg)?;
        let rows = eval::sweep(&engine, &references, &grid, &ks);
        if args.json {
            let mut json = json_header;
            json.insert("rankers".into(), serde_json::to_value(&rows)?);
            write_json(&mut out, &json)?;
        } else {
            writeln!(
                out,
                "sweep of {} combinations over {} scored articles ({:.1}s)",
                grid.len(),
                scored_ids.len(),
                t.elapsed().as_secs_f64()
            )?;
            write!(out, "{}", eval::table(&rows, &ks))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (rows, scored, lists) =
        eval::evaluate(&engine, &references, &resolved.rank, &args.baseline, &ks);
    let index_recall = eval::index_recall(&engine, &scored_ids, &ks, resolved.engine.hnsw);
    if args.json {
        let mut json = json_header;
        json.insert("options".into(), serde_json::to_value(&resolved.rank)?);
        json.insert(
            "index".into(),
            serde_json::json!({ "search": if engine.index.is_hnsw() { "hnsw" } else { "exact" }, "hnsw_recall_vs_exact": index_recall }),
        );
        json.insert("rankers".into(), serde_json::to_value(&rows)?);
        write_json(&mut out, &json)?;
    } else {
        writeln!(
            out,
            "relink eval {}: {} articles, {} scored",
            args.on.path.display(),
            engine.corpus.articles.len(),
            scored
        )?;
        if let Some(r) = &reference_lists {
            writeln!(
                out,
                "reference lists: {} by hand (scored), {} written by relink (not scored), {} empty",
                r.human, r.written_by_relink, r.empty
            )?;
        }
        if locked + engine.editorial.pins.len() + engine.editorial.blocks.len() > 0 {
            writeln!(
                out,
                "editorial: {} lists locked, {} with pins (graded with them), {} with blocks",
                locked,
                engine.editorial.pins.len(),
                engine.editorial.blocks.len()
            )?;
        }
        if let Some(l) = &links {
            writeln!(out, "reference links: {} in all, {} to corpus articles (scored), {} outside the corpus, {} to the article itself", l.links, l.resolved, l.outside, l.to_itself)?;
        }
        write!(out, "{}", eval::table(&rows, &ks))?;
        write!(out, "{}", eval::intervals(&rows, &ks))?;
        let ir: Vec<String> = index_recall
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        writeln!(out, "HNSW index vs exact search: {}", ir.join(", "))?;
    }
    if let Some(path) = &args.report {
        report_allowed(Some(&engine))?;
        let html = relink::report::html(&relink::report::ReportInput {
            corpus: &args.on.path.display().to_string(),
            model: &model_id,
            engine: &engine,
            references: &references,
            rows: &rows,
            lists: &lists,
            ks: &ks,
            scored,
        });
        relink::fsutil::write_new(path, html.as_bytes())
            .with_context(|| format!("{}", path.display()))?;
        eprintln!("relink: report written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The defaults printed in --help are the ones the ranker uses.
    #[test]
    fn help_shows_the_real_defaults() {
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("refresh")
            .unwrap()
            .render_long_help()
            .to_string();
        let d = RankOptions::default();
        for (flag, value) in [
            ("--top", d.k.to_string()),
            ("--pool", d.pool.to_string()),
            ("--min-similarity", d.min_similarity.to_string()),
            ("--lexical-weight", d.lexical_weight.to_string()),
            ("--half-life-after", d.half_life_after.to_string()),
            ("--half-life-before", d.half_life_before.to_string()),
            ("--undated-factor", d.undated_factor.to_string()),
            ("--window-after", d.window_after.to_string()),
            ("--window-before", d.window_before.to_string()),
            ("--quality-weight", d.quality_weight.to_string()),
            ("--duplicate", d.duplicate.to_string()),
        ] {
            let section = help
                .split(flag)
                .nth(1)
                .unwrap_or_else(|| panic!("{flag} not in help"));
            let text = section.split("\n\n").next().unwrap();
            assert!(
                text.contains(&format!("[default: {value}]")),
                "{flag}: {text}"
            );
        }
        assert_eq!(DEFAULT_BATCH_SIZE, 16);
    }
}
