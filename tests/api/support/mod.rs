//! The harness, and nothing else: the server under test and its databases
//! (helpers), real processes (server_process), and the real components the
//! tests drive: Chromium (browser), the OpenID provider (oidc), nginx and
//! Caddy (gateways), an SMTP server that keeps what it is sent (smtp), and
//! an HTTP server that keeps the webhooks it is sent (receiver).
//! Every other file in tests/api/ is tests.

#[macro_use]
pub mod helpers;

pub mod browser;
pub mod gateways;
pub mod oidc;
pub mod receiver;
pub mod server_process;
pub mod smtp;
