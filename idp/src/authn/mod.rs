//! How people prove who they are: passwords and one-time passwords, throttling, SSO sessions.

pub mod card;
pub mod password;
pub mod session;
pub mod throttle;
