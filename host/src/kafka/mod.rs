//! Kafka I/O: the clients ([`client`]), reading a stage's input ([`source`]),
//! producing its outputs ([`sink`]), what a failed delivery means ([`delivery`]),
//! another group's progress ([`lag`]), a topic's recent tail ([`tail`]) and the window
//! stage's checkpoint read from it ([`checkpoint`]).

pub mod checkpoint;
pub mod client;
pub mod delivery;
pub mod lag;
pub mod sink;
pub mod source;
pub mod tail;

pub use client::Clients;
