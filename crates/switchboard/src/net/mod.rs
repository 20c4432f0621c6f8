//! The guard on the gateway's own outbound requests to URLs an admin or a document can
//! set (provider endpoints, user-info URLs, upstream servers): `network.allowlist`.

mod allowlist;

pub use allowlist::AllowEntry;
