//! `relink serve`: the corpus, its vectors and its index loaded once, answering a CMS and the
//! editor's page over HTTP (axum on tokio).
//!
//! Readers take the current [`Live`] state (an `Arc`) and answer from it alone, so an answer
//! never mixes two states of the folder: a change (a file edited by someone else, or a write of
//! the server's own) is read into a new state while the old one keeps answering, then swapped
//! in. A watcher compares the files' stamps with those of the current state every `poll` and
//! loads a new one when any differs.
//!
//! Writes (`/v1/articles/...`) need the bearer token, take the corpus's lock (the one `relink
//! refresh` takes) only while they write, and keep every guarantee of the command line: they go
//! through the same functions.

mod metrics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::editorial::{ControlEdit, Names};
use crate::engine::{Engine, EngineSettings, Timings};
use crate::fsutil::FileStamp;
use crate::rank::{RankOptions, RankOverrides};

pub use metrics::Metrics;

/// Request bodies larger than this are refused (413).
pub const BODY_LIMIT: usize = 64 * 1024;
/// A request that takes longer is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Drafts embedded in one model call at most.
const MAX_BATCH: usize = 64;

/// How the server runs.
pub struct Config {
    /// The corpus folder.
    pub corpus: PathBuf,
    pub addr: SocketAddr,
    /// Bearer token for the write endpoints; without one they are refused.
    pub token: Option<String>,
    /// Ranking options (from relink.toml and the command line); requests may override them.
    pub options: RankOptions,
    pub settings: EngineSettings,
    /// How often the folder is checked for changes.
    pub poll: Duration,
}

/// Refuses to expose the server beyond this machine without a token.
pub fn check_bind(addr: &SocketAddr, token: Option<&str>) -> Result<(), String> {
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(format!(
            "refusing to listen on {addr} without a token: anyone who reaches it could rewrite the corpus; set --token or RELINK_TOKEN, or listen on 127.0.0.1"
        ));
    }
    Ok(())
}

/// One state of the corpus, answering every request that took it.
pub struct Live {
    pub engine: Engine,
    names: Names,
    /// Per article, its list with the server's own options, ranked on first request: a list
    /// depends on nothing but the state and the options. (The lists, not the answers' text:
    /// a few hundred bytes an article, so memory stays flat while they fill.)
    lists: Vec<std::sync::OnceLock<Vec<crate::rank::Scored>>>,
    /// The files and their stamps, taken before they were read.
    stamps: HashMap<PathBuf, FileStamp>,
}

/// The files of the corpus folder with their stamps now.
fn folder_stamps(corpus: &Path) -> HashMap<PathBuf, FileStamp> {
    let Some((files, _, _)) = crate::corpus::list_article_files(corpus) else {
        return HashMap::new();
    };
    files
        .into_iter()
        .filter_map(|f| FileStamp::now(&f).ok().map(|s| (f, s)))
        .collect()
}

struct App {
    config: Config,
    live: RwLock<Arc<Live>>,
    /// Serialises the server's own writes and reloads.
    writer: Mutex<()>,
    drafts: mpsc::Sender<Draft>,
    metrics: Metrics,
}

/// A draft waiting to be embedded, and where its vector goes.
struct Draft {
    text: String,
    reply: tokio::sync::oneshot::Sender<Result<Vec<f32>, String>>,
}

impl App {
    fn current(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes the corpus's lock (the one `relink refresh` takes), waiting for it.
    fn lock(config: &Config) -> Result<crate::fsutil::FolderLock, String> {
        crate::engine::lock_state(
            &config.settings.state_dir,
            &config.corpus,
            &format!("relink serve {}", config.corpus.display()),
            true,
            &mut |_, holder| {
                eprintln!("relink serve: waiting for the corpus's lock: held by {holder}")
            },
        )
        .map(|(lock, _)| lock)
        .map_err(|e| e.to_string())
    }

    /// Reads the corpus (under its lock: new vectors go into the cache) into a new state.
    fn load(config: &Config) -> Result<Live, String> {
        let _lock = App::lock(config)?;
        Self::load_locked(config)
    }

    fn load_locked(config: &Config) -> Result<Live, String> {
        let stamps = folder_stamps(&config.corpus);
        let records = crate::state::ArticleRecords::load(&config.settings.state_dir);
        let (corpus, _) = crate::corpus::read_corpus_with_records(&config.corpus, &records)
            .map_err(|e| e.to_string())?;
        if corpus.articles.is_empty() {
            return Err(format!(
                "{}: no readable article (.md, .txt)",
                config.corpus.display()
            ));
        }
        for e in &corpus.errors {
            eprintln!("relink serve: skipped {e}");
        }
        let engine = Engine::build(corpus, &config.settings, Timings::default())
            .map_err(|e| e.to_string())?;
        for p in &engine.editorial.problems {
            eprintln!("relink serve: warning: {p}");
        }
        let names = Names::of(&engine.corpus.root, &engine.corpus.articles);
        let lists = (0..engine.corpus.articles.len())
            .map(|_| std::sync::OnceLock::new())
            .collect();
        Ok(Live {
            engine,
            names,
            lists,
            stamps,
        })
    }

    fn swap(&self, live: Live) {
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
        self.metrics.reloads.inc();
    }

    /// Loads a new state when a file changed since the current one was read.
    fn reload_if_changed(&self) -> Result<bool, String> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if folder_stamps(&self.config.corpus) == self.current().stamps {
            return Ok(false);
        }
        let live = App::load(&self.config)?;
        self.swap(live);
        Ok(true)
    }
}

/// Runs the server until Ctrl-C (or SIGTERM). `ready` is called with the address it listens on
/// once it answers.
pub fn run(config: Config, ready: impl FnOnce(SocketAddr) + Send + 'static) -> Result<(), String> {
    check_bind(&config.addr, config.token.as_deref())?;
    let started = Instant::now();
    let live = App::load(&config)?;
    let (drafts, queue) = mpsc::channel::<Draft>();
    let app = Arc::new(App {
        live: RwLock::new(Arc::new(live)),
        writer: Mutex::new(()),
        drafts,
        metrics: Metrics::default(),
        config,
    });
    let embedder = app.clone();
    std::thread::Builder::new()
        .name("relink-drafts".into())
        .spawn(move || embed_drafts(&embedder, &queue))
        .map_err(|e| e.to_string())?;
    let watcher = Arc::downgrade(&app);
    let poll = app.config.poll;
    std::thread::Builder::new()
        .name("relink-watch".into())
        .spawn(move || loop {
            std::thread::sleep(poll);
            let Some(app) = watcher.upgrade() else { return };
            if let Err(e) = app.reload_if_changed() {
                eprintln!("relink serve: reading the folder again failed: {e}");
            }
        })
        .map_err(|e| e.to_string())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(app.config.addr)
            .await
            .map_err(|e| format!("{}: {e}", app.config.addr))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!(
            "relink serve: {} articles of {}, listening on http://{addr} (ready in {:.2}s)",
            app.current().engine.corpus.articles.len(),
            app.config.corpus.display(),
            started.elapsed().as_secs_f64()
        );
        ready(addr);
        axum::serve(listener, router(app))
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| e.to_string())
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/related", get(related).post(related_draft))
        .route("/v1/search", get(search))
        .route("/v1/articles/refresh", post(refresh_article))
        .route(
            "/v1/articles/pins",
            post(|s, h, b| control(s, h, b, ControlEdit::Pin))
                .delete(|s, h, b| control(s, h, b, ControlEdit::Unpin)),
        )
        .route(
            "/v1/articles/blocks",
            post(|s, h, b| control(s, h, b, ControlEdit::Block))
                .delete(|s, h, b| control(s, h, b, ControlEdit::Unblock)),
        )
        .route(
            "/v1/articles/lock",
            post(|s, h, b| control(s, h, b, ControlEdit::Lock))
                .delete(|s, h, b| control(s, h, b, ControlEdit::Unlock)),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(app.clone(), observe))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(app)
}

/// Counts requests and their latencies per route and status.
async fn observe(
    State(app): State<Arc<App>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let t = Instant::now();
    let route = metrics::route_label(req.uri().path());
    let response = next.run(req).await;
    app.metrics
        .observe(route, response.status().as_u16(), t.elapsed());
    response
}

type Answer = Result<Response, Failure>;

/// A refused or failed request: its status and a message, answered as `{"error": message}`.
pub struct Failure {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Failure {
    Failure {
        status,
        message: message.into(),
    }
}

fn ok_json(value: Value) -> Response {
    axum::Json(value).into_response()
}

/// Query parameters, in order; a malformed query is a 400.
fn query_pairs(raw: Option<String>) -> Result<Vec<(String, String)>, Failure> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.as_deref().unwrap_or(""))
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad query string: {e}")))
}

/// The value of query parameter `name`.
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The ranking options of a request: the server's, with `k` and any option given by name.
fn options_from(
    app: &App,
    pairs: &[(String, String)],
    skip: &[&str],
) -> Result<RankOptions, Failure> {
    let mut options = app.config.options.clone();
    let mut over = RankOverrides::default();
    for (name, value) in pairs.iter().filter(|(n, _)| !skip.contains(&n.as_str())) {
        let one =
            RankOverrides::parse(name, value).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
        over = over.then(&one);
    }
    over.validate(|n| n.to_string())
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    over.apply(&mut options);
    Ok(options)
}

/// The corpus article a request names by `url` or `path` (relative to the corpus folder: a
/// path that leads outside it names nothing).
fn article_of(live: &Live, url: Option<&str>, path: Option<&str>) -> Result<usize, Failure> {
    let found = match (url, path) {
        (Some(u), None) => live.names.find(u),
        (None, Some(p)) => {
            if Path::new(p).is_absolute() || p.split(['/', '\\']).any(|c| c == "..") {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "path: must be relative to the corpus folder, without `..`",
                ));
            }
            live.names.find(p)
        }
        (Some(_), Some(_)) => {
            return Err(error(StatusCode::BAD_REQUEST, "give url or path, not both"))
        }
        (None, None) => return Err(error(StatusCode::BAD_REQUEST, "url or path is required")),
    };
    found.ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "no article of the corpus has this URL or path",
        )
    })
}

async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("page.html"),
    )
        .into_response()
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let live = app.current();
    ok_json(json!({
        "status": "ok",
        "articles": live.engine.corpus.articles.len(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    let live = app.current();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(live.engine.corpus.articles.len()),
    )
        .into_response()
}

/// `GET /v1/related?url=…|path=…[&k=…&<option>=…][&current=true]`: what `relink related
/// --json` prints, with the article's `file` and `control` (and, with `current`, the list its
/// file holds).
async fn related(State(app): State<Arc<App>>, RawQuery(raw): RawQuery) -> Answer {
    let pairs = query_pairs(raw)?;
    let get = |name: &str| param(&pairs, name);
    let options = options_from(&app, &pairs, &["url", "path", "current"])?;
    let with_current = match get("current") {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("current={other}: expected true or false"),
            ))
        }
    };
    let live = app.current();
    let i = article_of(&live, get("url"), get("path"))?;
    let plain = pairs.iter().all(|(n, _)| n == "url" || n == "path");
    let computed;
    let list: &[crate::rank::Scored] = if plain {
        live.lists[i].get_or_init(|| live.engine.ranker(options).rank_article(i))
    } else {
        computed = live.engine.ranker(options).rank_article(i);
        &computed
    };
    let a = &live.engine.corpus.articles[i];
    let mut answer = live
        .engine
        .related_json(&a.title, list, live.engine.editorial.is_locked(i));
    answer["file"] = json!(a.display_path());
    answer["control"] = json!(a.control);
    if with_current {
        // The list the file holds now, beside relink's (the editor's page shows both).
        answer["current"] = json!(stored_list(a));
    }
    Ok(ok_json(answer))
}

/// Reads a JSON body of at most [`BODY_LIMIT`] bytes.
async fn json_body(body: Body) -> Result<Value, Failure> {
    let bytes: Bytes = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {BODY_LIMIT} bytes"),
        )
    })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
    if !value.is_object() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    }
    Ok(value)
}

fn string_field<'a>(body: &'a Value, key: &str) -> Result<Option<&'a str>, Failure> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("`{key}` must be a string"),
        )),
    }
}

/// `POST /v1/related` with a draft `{title, excerpt?, publishedDateTime?, k?}`: its list.
/// Drafts arriving together are embedded in one model call.
async fn related_draft(State(app): State<Arc<App>>, RawQuery(raw): RawQuery, body: Body) -> Answer {
    let mut pairs = query_pairs(raw)?;
    let body = json_body(body).await?;
    let title = string_field(&body, "title")?
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "`title` is required"))?;
    let excerpt = string_field(&body, "excerpt")?;
    let date = match string_field(&body, "publishedDateTime")? {
        Some(d) => Some(crate::article::parse_timestamp(d).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "`publishedDateTime` is not an RFC 3339 time",
            )
        })?),
        None => None,
    };
    if let Some(k) = body.get("k") {
        let k = k
            .as_u64()
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, "`k` must be a number"))?;
        pairs.push(("k".into(), k.to_string()));
    }
    let options = options_from(&app, &pairs, &[])?;
    let text = match excerpt.filter(|e| !e.trim().is_empty()) {
        Some(e) => format!("{title}. {e}"),
        None => title.to_string(),
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    app.drafts
        .send(Draft { text, reply })
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the embedder has stopped"))?;
    let vector = answer
        .await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the embedder has stopped"))?
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))?;
    let live = app.current();
    let list = live.engine.rank_vector(
        ndarray::ArrayView1::from(&vector[..]),
        title,
        date,
        &options,
    );
    Ok(ok_json(live.engine.related_json(title, &list, false)))
}

/// The draft embedder: loads the model on the first draft, then embeds every draft waiting at
/// once (up to [`MAX_BATCH`]): under load, the drafts that arrive while one batch runs make up
/// the next.
fn embed_drafts(app: &App, queue: &mpsc::Receiver<Draft>) {
    let mut embedder: Option<Box<dyn crate::embed::TextEmbedder>> = None;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        if embedder.is_none() {
            let model_id = app.current().engine.embed_stats.model_id.clone();
            match app.config.settings.embedder.load(&model_id) {
                Ok(e) => embedder = Some(e),
                Err(e) => {
                    for d in batch {
                        let _ = d.reply.send(Err(e.to_string()));
                    }
                    continue;
                }
            }
        }
        let e = embedder.as_mut().expect("loaded above");
        let texts: Vec<&str> = batch.iter().map(|d| d.text.as_str()).collect();
        let result = e.embed(&texts);
        app.metrics.embeds.add(batch.len() as u64);
        app.metrics.embed_batches.inc();
        match result {
            Ok(vectors) => {
                for (d, row) in batch.into_iter().zip(vectors.rows()) {
                    let _ = d.reply.send(Ok(row.to_vec()));
                }
            }
            Err(err) => {
                for d in batch {
                    let _ = d.reply.send(Err(err.to_string()));
                }
            }
        }
    }
}

/// `GET /v1/search?q=…[&limit=N]`: corpus articles by title (BM25), for the page's search box.
async fn search(State(app): State<Arc<App>>, RawQuery(raw): RawQuery) -> Answer {
    let pairs = query_pairs(raw)?;
    let get = |name: &str| param(&pairs, name);
    let q = get("q")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "q is required"))?;
    let limit: usize = match get("limit") {
        Some(l) => l
            .parse()
            .ok()
            .filter(|&n| (1..=100).contains(&n))
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, "limit: 1 to 100"))?,
        None => 20,
    };
    let live = app.current();
    let engine = &live.engine;
    let terms = engine.bm25.text_terms(q);
    let hits: Vec<Value> = engine
        .bm25
        .top_k(&terms, limit)
        .into_iter()
        .map(|(i, score)| {
            let a = &engine.corpus.articles[i];
            json!({
                "title": a.title,
                "path": crate::editorial::relative_path(&engine.corpus.root, a),
                "webUrl": a.web_url,
                "publishedDateTime": a.published_date_time.map(crate::article::format_timestamp),
                "provider": a.provider.as_ref().and_then(|p| p.name.clone()),
                "score": score,
                "locked": engine.editorial.is_locked(i),
            })
        })
        .collect();
    Ok(ok_json(json!({ "query": q, "results": hits })))
}

/// Checks the bearer token of a write request.
fn authorize(app: &App, headers: &HeaderMap) -> Result<(), Failure> {
    let Some(token) = app.config.token.as_deref() else {
        return Err(error(
            StatusCode::FORBIDDEN,
            "writes are disabled: start relink serve with --token (or RELINK_TOKEN)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compared in time independent of where the strings differ.
    let same = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required",
        ))
    }
}

/// The list article `a`'s file holds (read again when the article came from its record,
/// which keeps only the list's hash).
fn stored_list(a: &crate::article::Article) -> Vec<crate::article::Related> {
    match &a.related {
        Some(list) => list.clone(),
        None => crate::corpus::read_article(a.source.path())
            .ok()
            .and_then(|a| a.related)
            .unwrap_or_default(),
    }
}

/// What a write of one article's list or map answers: the article's new state.
fn article_answer(live: &Live, i: usize, extra: Value) -> Value {
    let a = &live.engine.corpus.articles[i];
    let mut v = json!({
        "file": a.display_path(),
        "control": a.control,
        "related": stored_list(a),
    });
    if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
        v.extend(extra);
    }
    v
}

/// Runs a write on a blocking thread, under the server's writer lock and the corpus's lock, on
/// the state the files hold once both are taken (the current one when no file changed since it
/// was read); the state is read again afterwards.
async fn write<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&App, &Live) -> Result<T, Failure> + Send + 'static,
) -> Result<(T, Arc<Live>), Failure> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let _writer = app.writer.lock().unwrap_or_else(|e| e.into_inner());
        let _lock =
            App::lock(&app.config).map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))?;
        let load = || {
            App::load_locked(&app.config).map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))
        };
        // The state answering now, unless a file changed since it was read.
        let current = app.current();
        let before = if folder_stamps(&app.config.corpus) == current.stamps {
            current
        } else {
            Arc::new(load()?)
        };
        let out = f(&app, &before)?;
        let after = load()?;
        app.swap(after);
        Ok((out, app.current()))
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// Ranks article `i` of `live` and writes its list, as `refresh --only` does.
fn refresh_one(app: &App, live: &Live, i: usize) -> Result<bool, Failure> {
    let report = crate::refresh::refresh(&live.engine, &app.config.options, &[i], false, false);
    if let Some(e) = report.write_errors.first() {
        return Err(error(StatusCode::CONFLICT, e.to_string()));
    }
    let state_dir = &app.config.settings.state_dir;
    for w in crate::refresh::remember_written(&live.engine.corpus, &report, state_dir) {
        eprintln!("relink serve: warning: {w}");
    }
    if let Err(w) = crate::refresh::save_records(&live.engine, &report, state_dir) {
        eprintln!("relink serve: warning: {w}");
    }
    Ok(!report.changes.is_empty())
}

/// The article named by a write's body (`url` or `path`).
fn body_article(live: &Live, body: &Value) -> Result<usize, Failure> {
    article_of(
        live,
        string_field(body, "url")?,
        string_field(body, "path")?,
    )
}

/// `POST /v1/articles/refresh {url|path}`: rewrites that article's list.
async fn refresh_article(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Answer {
    authorize(&app, &headers)?;
    let body = json_body(body).await?;
    let ((key, changed), live) = write(&app, move |app, live| {
        let i = body_article(live, &body)?;
        if live.engine.editorial.is_locked(i) {
            return Err(error(StatusCode::CONFLICT, "the article's list is locked"));
        }
        Ok((key_of(live, i), refresh_one(app, live, i)?))
    })
    .await?;
    let i = relocate(&live, &key)?;
    Ok(ok_json(article_answer(
        &live,
        i,
        json!({ "changed": changed }),
    )))
}

/// The position in `live` of the article `key` (its path in the corpus) names.
fn relocate(live: &Live, key: &str) -> Result<usize, Failure> {
    live.names.find(key).ok_or_else(|| {
        error(
            StatusCode::CONFLICT,
            "the article went while it was written",
        )
    })
}

/// The path in the corpus of article `i` of `live`, to find it again in a later state.
fn key_of(live: &Live, i: usize) -> String {
    crate::editorial::relative_path(&live.engine.corpus.root, &live.engine.corpus.articles[i])
        .unwrap_or_default()
}

/// `POST`/`DELETE` `/v1/articles/pins|blocks|lock` `{url|path, targets?}`: as `relink pin`,
/// `unpin`, `block`, `unblock`, `lock`, `unlock`.
async fn control(
    app: State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
    edit: ControlEdit,
) -> Answer {
    let State(app) = app;
    authorize(&app, &headers)?;
    let body = json_body(body).await?;
    let targets: Vec<String> = match body.get("targets") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "`targets` must be a list of strings",
                )
            })?,
        Some(_) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "`targets` must be a list of strings",
            ))
        }
    };
    let needs_targets = !matches!(edit, ControlEdit::Lock | ControlEdit::Unlock);
    if needs_targets && targets.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "`targets` is required"));
    }
    let ((key, changed, list_changed), live) = write(&app, move |app, live| {
        let i = body_article(live, &body)?;
        let engine = &live.engine;
        let (control, _) = crate::editorial::edit_control(
            &engine.corpus.root,
            &engine.corpus.articles,
            i,
            edit,
            &targets,
        )
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e))?;
        let written = crate::corpus::write_control_in(
            &engine.corpus.root,
            &engine.corpus.articles[i],
            &control,
        )
        .map_err(|e| error(StatusCode::CONFLICT, e.to_string()))?;
        let key = key_of(live, i);
        // The list follows the new map, as after `relink pin` (a lock leaves it as it is).
        let list_changed = if written.is_some() && edit != ControlEdit::Lock {
            let now = App::load_locked(&app.config)
                .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            let i = relocate(&now, &key)?;
            refresh_one(app, &now, i)?
        } else {
            false
        };
        Ok((key, written.is_some(), list_changed))
    })
    .await?;
    let i = relocate(&live, &key)?;
    Ok(ok_json(article_answer(
        &live,
        i,
        json!({ "changed": changed, "list_changed": list_changed }),
    )))
}
