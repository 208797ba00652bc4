//! `nudge serve`: the SQLite store, the in-process bus and timer loop, the HTTP server and local mail.

pub mod bus;
pub mod crash_point;
pub mod demo;
pub mod evaluate_store;
pub mod handlers;
pub mod inbox_stream;
pub mod journal;
pub mod mail;
pub mod node;
pub mod priority;
pub mod prometheus;
pub mod secrets;
pub mod server;
pub mod store;
pub mod workers;
