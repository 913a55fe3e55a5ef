//! The harness, and nothing else: the server under test and its databases
//! (helpers), real processes (server_process), and the real components the
//! tests drive: Chromium (browser), the OpenID provider (oidc), nginx and
//! Caddy (gateways), and an SMTP server that keeps what it is sent (smtp).
//! Every other file in tests/api/ is tests.

#[macro_use]
pub mod helpers;

pub mod browser;
pub mod gateways;
pub mod oidc;
pub mod server_process;
pub mod smtp;
