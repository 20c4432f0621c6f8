//! Switchboard: a multi-tenant MCP and tool-calling gateway.
//!
//! Every entry point (REST execute, later MCP tools/call) goes through one executor
//! ([`exec`]); the modules below are the steps of that path and the edges around it.

pub mod api;
pub mod builtin;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod exec;
pub mod http_server;
pub mod identity;
pub mod mcp;
pub mod net;
pub mod oauth;
pub mod sandbox;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod vault;
pub mod workers;
