//! What the simulators share: how they get their listening socket.

use std::net::TcpListener;

/// The socket passed by socket activation (systemd's `LISTEN_FDS`, fd 3) when started that way,
/// else `bind` bound (port 0 lets the system pick). The address is printed on one standard-output
/// line, `listening on ADDR`, for whoever started the process to read.
pub fn listener_or_bind(bind: &str) -> std::io::Result<TcpListener> {
    let listener = match listenfd::ListenFd::from_env().take_tcp_listener(0)? {
        Some(l) => l,
        None => TcpListener::bind(bind)?,
    };
    println!("listening on {}", listener.local_addr()?);
    Ok(listener)
}
