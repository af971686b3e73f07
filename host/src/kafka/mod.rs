//! Kafka I/O: the clients ([`client`]), reading a stage's input ([`source`]),
//! producing its outputs ([`sink`]), what a failed delivery means ([`delivery`]) and
//! another group's progress ([`lag`]).

pub mod client;
pub mod delivery;
pub mod lag;
pub mod sink;
pub mod source;

pub use client::Clients;
