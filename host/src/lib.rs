//! streamhost: a Kafka stream processor whose data-quality and enrichment rules are
//! WebAssembly components.
//!
//! An event's way through the host (docs/design.md has the map):
//!
//! 1. [`kafka::source`]   read a batch from the input topic (consumer group, manual commits)
//! 2. [`decode`]          bytes → [`event::Event`] typed by the [`schema`], or a DLQ code
//! 3. [`plugins`]         the WASM chain judges (and may enrich) the batch
//! 4. [`records`]         accepted → the enriched event, rejected → the DLQ record
//! 5. [`kafka::sink`]     produce, wait for every acknowledgement, then commit (1)
//!
//! [`stages::validate`] is steps 2–4 for a batch, [`stages::window`] reads the enriched
//! events back and writes rolling averages per key; [`stages::runtime`] is the one loop
//! both run on. [`liveness`] makes sure every input partition is read by some
//! instance, [`admin`] serves health and metrics, [`config`] the settings,
//! [`replay`] puts dead-lettered input events back (`streamhost dlq replay`), and
//! [`workbench`] runs one plugin on sample events (`streamhost plugin check|test`).

// The workspace denies `unsafe`. The host allows it in two places, each saying why it
// is sound: loading a compiled plugin from its own cache (plugins/compiled.rs), and
// lowering a column's presence list into a plugin (plugins/generations/v1/lowered.rs).
#![deny(unsafe_code)]

pub mod admin;
pub mod config;
pub mod decode;
pub mod event;
pub mod kafka;
pub mod limiter;
pub mod liveness;
pub mod plugins;
pub mod records;
pub mod replay;
pub mod schema;
pub mod stages;
pub mod telemetry;
pub mod text;
pub mod timefmt;
pub mod workbench;
