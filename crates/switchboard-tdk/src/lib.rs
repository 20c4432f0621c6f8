//! switchboard-tdk: build tool workers in Rust that speak Arcade's worker protocol, so
//! Switchboard (or Arcade Engine) can list and call their tools.
//!
//! Declare a [`Toolkit`] of [`Tool`]s with typed inputs (`serde` + `schemars` derive the
//! parameter schemas), auth requirements and secrets, then serve it with a [`Worker`].
//! A handler gets a [`ToolContext`] (user, OAuth token, secrets) and returns a value or a
//! [`ToolError`] carrying an Arcade error kind.
//!
//! ```no_run
//! use switchboard_tdk::{Auth, NoInput, Tool, ToolContext, ToolError, Toolkit, Worker};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct EchoInput {
//!     /// The text to send back.
//!     message: String,
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let toolkit = Toolkit::new("Demo", "0.1.0")
//!     .description("A few demonstration tools")
//!     .tool(Tool::new("Echo", "Echo a message back", |_ctx: ToolContext, input: EchoInput| async move {
//!         Ok::<_, ToolError>(input.message)
//!     }))
//!     .tool(
//!         Tool::new("WhoAmI", "Who the token belongs to", |ctx: ToolContext, _: NoInput| async move {
//!             Ok::<_, ToolError>(ctx.user_id().map(str::to_owned))
//!         })
//!         .requires_auth(Auth::oauth2("sandbox").scopes(["profile"])),
//!     );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! Worker::new("s3cret").toolkit(toolkit).serve(listener, std::future::pending()).await
//! # }
//! ```
//!
//! Must not: log or return a token or secret value.

mod context;
mod error;
pub mod schema;
mod toolkit;
mod worker;

pub use context::ToolContext;
pub use error::{ErrorKind, ToolError};
pub use toolkit::{Auth, NoInput, Tool, Toolkit};
pub use worker::{InvokeError, Worker};

/// The wire types, for callers that build requests or read definitions.
pub use switchboard_wire as wire;
