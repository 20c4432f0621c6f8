//! Switchboard: a multi-tenant MCP and tool-calling gateway.
//!
//! Every tool call, REST execute and MCP `tools/call` alike, goes through one executor
//! ([`exec`]); the modules below are the steps of that path and the edges around it.
//! From the top down: `cli` → `server` → `http_server` → `api`/`mcp` (the doors, serving
//! from [`state::AppState`]) → `exec` → `oauth`/`identity`/`workers` →
//! `store`/`vault`/`catalog` → `config`. A module imports only from below itself.

pub mod api;
pub mod builtin;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod exec;
pub mod http_server;
pub mod identity;
pub mod mcp;
pub mod net;
pub mod oauth;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod vault;
pub mod workers;
