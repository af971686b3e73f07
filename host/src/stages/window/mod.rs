//! The window stage: event-time hopping windows per key over the enriched topic.
//!
//! * [`stage`]: the [`Stage`](crate::stages::Stage) the runtime drives, wiring the rest.
//! * [`operator`]: the pure window operator (no I/O): windows, watermark, closing.
//! * [`lanes`]: the lanes of event time and their one clock (event time, idleness).
//! * [`fields`]: the key, event time and source position read from an enriched event.
//! * [`positions`]: what was read and counted per partition; what to skip as read.
//! * [`commits`]: which positions are safe to commit, and said read by a window.
//! * [`progress`]: the broker's word on records still to come.
//! * [`restore`]: what was already emitted, read back through a [`restore::Checkpoint`]
//!   (on Kafka, `crate::kafka::checkpoint`).

pub mod commits;
pub mod fields;
pub mod lanes;
pub mod operator;
pub mod positions;
pub mod progress;
pub mod restore;
pub mod stage;

pub use fields::WindowFields;
pub use restore::RestoreError;
pub use stage::WindowStage;
