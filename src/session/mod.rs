//! Sessions: one prepared sandbox, many commands.
//!
//! A session is a server process (`server`) that holds a loaded profile and
//! runs each command it is asked for as a launch of its own, in a worker
//! process. Two kinds of clients talk to it (`wire`): the CLI's `cordon
//! session` commands, through a named control socket only this user can reach
//! (`dir`), and the library's [`Sandbox`](client::Sandbox), through a socket
//! pair to a server it started for itself (`client`).

pub mod client;
#[cfg(feature = "cli")]
pub mod command;
pub mod dir;
pub mod server;
pub mod wire;

pub use client::{Child, Command, Outcome, Output, Sandbox, SandboxBuilder, Stdio};
