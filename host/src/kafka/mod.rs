//! Kafka I/O: the clients ([`client`]), a stage run on Kafka ([`run`]), reading a
//! stage's input ([`source`]),
//! producing its outputs ([`sink`]), what a failed delivery means ([`delivery`]),
//! another group's progress ([`lag`]), bounded reads of a topic ([`tail`]), the window
//! stage's checkpoint read from one ([`checkpoint`]), the liveness watchdog's
//! stamps ([`stamps`]) and the configured topics, created and watched ([`topics`]).

pub mod checkpoint;
pub mod client;
pub mod delivery;
pub mod lag;
pub mod run;
pub mod sink;
pub mod source;
pub mod stamps;
pub mod tail;
pub mod topics;

pub use client::Clients;
