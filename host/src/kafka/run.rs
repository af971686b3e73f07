//! A stage run on Kafka: its consumer and its watchdog's stamps built, the loop
//! ([`crate::stages::runtime::drive`]) turned until the process stops, the consumer
//! closed.

use std::time::Duration;

use tokio::sync::watch;

use super::sink::KafkaSink;
use super::source::KafkaSource;
use super::stamps::KafkaStamps;
use super::Clients;
use crate::config::WatchdogMode;
use crate::liveness::{jitter, side_group, Health, Watchdog, WatchdogConfig};
use crate::stages::io::SourceError;
use crate::stages::runtime::{drive, Batching};
use crate::stages::{Stage, StageError};

/// Where a stage reads, how much at a time, and when its partitions count as orphaned.
#[derive(Debug, Clone)]
pub struct Reading {
    pub clients: Clients,
    pub group_id: String,
    pub topic: String,
    pub batching: Batching,
    /// See `kafka.watchdog`.
    pub watchdog: WatchdogMode,
    /// See `kafka.stall_timeout_secs`.
    pub stall_timeout: Duration,
}

/// Run `stage` until `stop` turns true: join `reading`'s group, start the stage's
/// watchdog, and turn the loop. Whatever was produced is waited for and committed
/// before returning: a clean stop re-reads nothing. On an error, what is in flight is
/// left uncommitted (read again by the next run) and `/health` says the stage failed.
pub async fn run<S: Stage>(
    stage: &mut S,
    reading: &Reading,
    sink: &KafkaSink,
    health: &Health,
    stop: watch::Receiver<bool>,
) -> Result<(), StageError> {
    let name = stage.name();
    let result = turn(stage, reading, sink, health, stop).await;
    if let Err(error) = &result {
        health.failed(name, &reading.topic, &error.to_string());
    }
    result
}

async fn turn<S: Stage>(
    stage: &mut S,
    reading: &Reading,
    sink: &KafkaSink,
    health: &Health,
    mut stop: watch::Receiver<bool>,
) -> Result<(), StageError> {
    let mut source = KafkaSource::new(&reading.clients, &reading.group_id, &reading.topic)?;
    let stamps = match reading.watchdog {
        WatchdogMode::Off => None,
        _ => Some(KafkaStamps::new(
            &reading.clients,
            &side_group(&reading.group_id),
            &reading.topic,
        )?),
    };
    let watchdog = Watchdog::start(
        WatchdogConfig {
            stage: stage.name(),
            group_id: reading.group_id.clone(),
            topic: reading.topic.clone(),
            mode: reading.watchdog,
            stall_timeout: reading.stall_timeout,
            longest_turn: stage.idle_wait(),
            jitter: jitter(reading.stall_timeout),
        },
        health.clone(),
        stamps,
    )
    .map_err(|e| SourceError::Thread(e.to_string()))?;
    let result = drive(
        stage,
        &mut source,
        sink,
        Some(&watchdog),
        reading.batching,
        &mut stop,
    )
    .await;
    drop(watchdog);
    tokio::task::block_in_place(|| source.close(CLOSE_WAIT));
    result
}

/// The longest a stopping stage waits for its consumer to leave the group.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
