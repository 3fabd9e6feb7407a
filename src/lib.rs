//! relink keeps the related-article lists of a news archive fresh.
//!
//! The pipeline, one module a stage:
//!
//! - [`corpus`] and [`article`]: read a folder of article files (YAML front matter) or a JSON
//!   Lines file; splice a new `related:` block into a file without touching anything else.
//! - [`embed`]: title + excerpt to a unit vector with all-MiniLM-L6-v2 (rust-bert), and
//!   [`cache`]: those vectors kept by (model, hash of the text), so reruns embed only what
//!   changed.
//! - [`index`]: exact or HNSW nearest-neighbour search; [`lexical`]: BM25.
//! - [`rank`]: similarity, publication time and provider quality to a diverse top k.
//! - [`engine`] ties them together; [`refresh`] writes the lists; [`eval`] and [`report`]
//!   measure them against reference lists.
//! - [`selective`]: after a change, re-rank only the lists it can reach ([`coarse`]: bounds
//!   of many cosines at once, from 8-bit vectors).
//! - [`serve`]: the HTTP server (`relink serve`) and the editor's page.
//! - [`state`]: what relink remembers writing, so `eval` never grades its own lists.
//! - [`editorial`]: pins, blocks and locks from the files, and the corpus-wide rules.
//! - [`config`]: `relink.toml`; [`alloc`]: the allocator tuning libtorch needs; [`fsutil`]:
//!   regular files only, rewrites that keep owner, mode and concurrent edits, folder locks.

pub mod alloc;
pub mod article;
pub mod cache;
pub mod coarse;
pub mod config;
pub mod corpus;
pub mod editorial;
pub mod embed;
pub mod engine;
pub mod eval;
pub mod fsutil;
pub mod graph;
pub mod index;
pub mod lexical;
pub mod rank;
pub mod refresh;
pub mod report;
pub mod selective;
pub mod serve;
pub mod state;
pub mod testing;
pub mod tune;
pub mod worker;
