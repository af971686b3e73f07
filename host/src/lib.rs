//! streamhost: a Kafka stream processor whose data-quality and enrichment rules are
//! WebAssembly components.
//!
//! An event's way through the host, one module per stage:
//!
//! 1. [`source`]   read a batch from `my_events` (consumer group, manual commits)
//! 2. [`decode`]   bytes → [`event::Event`] typed by the [`schema`], or a DLQ code
//! 3. [`plugins`]  the WASM chain judges (and may enrich) the batch
//! 4. [`route`]    accepted → `enriched_events` (keyed by the window key), rejected → `dlq`
//! 5. [`sink`]     produce, wait for every acknowledgement, then commit (1)
//!
//! The window stage reads `enriched_events` back ([`aggregate`], on [`window`]) and
//! writes rolling averages per key (country in the brief's) to `country_event_averages`; [`restore`] tells it,
//! after a crash or rebalance, which windows were already emitted.
//! [`pipeline`] wires 1–5, [`admin`] serves health and metrics, [`config`] the settings;
//! [`liveness`] makes sure every input partition is read by some instance;
//! [`replay`] puts dead-lettered input events back (`streamhost dlq replay`).

pub mod admin;
pub mod aggregate;
pub mod config;
pub mod decode;
pub mod event;
pub mod liveness;
pub mod pipeline;
pub mod plugins;
pub mod replay;
pub mod restore;
pub mod route;
pub mod schema;
pub mod sink;
pub mod source;
pub mod timefmt;
pub mod window;
