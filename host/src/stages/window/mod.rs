//! The window stage: event-time hopping windows per key over the enriched topic.
//!
//! * [`operator`]: the pure window operator (no I/O): lanes, watermark, closing.
//! * [`stage`]: the stage over the runtime: reading enriched events, commits, takeovers.
//! * [`progress`]: the broker's word on records still to come.
//! * [`restore`]: what was already emitted, read back from the averages topic.

pub mod operator;
pub mod progress;
pub mod restore;
pub mod stage;

pub use restore::RestoreError;
pub use stage::{WindowFields, WindowStage};
