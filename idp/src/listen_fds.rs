//! Socket activation: listening sockets handed over by whoever started `idp serve`, in systemd's
//! protocol (`LISTEN_FDS` sockets from fd 3 on, `LISTEN_PID`, `LISTEN_FDNAMES`).
//!
//! With a systemd `.socket` unit the port is open before the server runs and stays open across
//! restarts (connections wait in the queue instead of being refused), and the server needs no
//! privilege to bind. The test harness uses the same door: it binds port 0 itself, so it knows
//! the issuer URL before the server starts, and nothing else can take the port in between.

use std::net::TcpListener;

/// The name of the socket for the main site.
pub const HTTP: &str = "http";
/// The name of the socket for the card TLS listener (`card_login`).
pub const CARD_TLS: &str = "card-tls";
pub const METRICS: &str = "metrics";

/// Which of the passed sockets (counted from fd 3) serves what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub count: usize,
    pub http: Option<usize>,
    pub card_tls: Option<usize>,
    pub metrics: Option<usize>,
}

/// Reads the protocol's variables (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`, as given).
///
/// `Ok(None)`: nothing was passed to this process (no or zero `LISTEN_FDS`, or a `LISTEN_PID`
/// that is another process's: the variables were inherited from a parent that was meant).
/// The main site's socket is the one named `http`; when none is, the first one not named
/// `card-tls` (systemd names unnamed sockets after their unit). Every socket must have a use:
/// one left over means the socket unit and this server disagree, and that is said at start.
pub fn plan(fds: Option<&str>, pid: Option<&str>, names: Option<&str>, our_pid: u32) -> Result<Option<Plan>, String> {
    let Some(fds) = fds else { return Ok(None) };
    if let Some(pid) = pid.filter(|p| !p.is_empty()) {
        let pid: u32 = pid.trim().parse().map_err(|_| format!("LISTEN_PID is not a process id: {pid:?}"))?;
        if pid != our_pid {
            return Ok(None);
        }
    }
    let count: usize = fds.trim().parse().map_err(|_| format!("LISTEN_FDS is not a number: {fds:?}"))?;
    if count == 0 {
        return Ok(None);
    }
    let names: Vec<&str> = match names {
        Some(n) => n.split(':').collect(),
        None => vec![""; count],
    };
    if names.len() != count {
        return Err(format!("LISTEN_FDNAMES has {} name(s) for {count} socket(s)", names.len()));
    }
    let only = |wanted: &str| -> Result<Option<usize>, String> {
        let mut found = names.iter().enumerate().filter(|(_, n)| **n == wanted).map(|(i, _)| i);
        let first = found.next();
        if found.next().is_some() {
            return Err(format!("more than one passed socket is named {wanted}"));
        }
        Ok(first)
    };
    let card_tls = only(CARD_TLS)?;
    let metrics = only(METRICS)?;
    let http = match only(HTTP)? {
        Some(i) => Some(i),
        None => names.iter().position(|n| *n != CARD_TLS && *n != METRICS),
    };
    let used = |i: usize| Some(i) == http || Some(i) == card_tls || Some(i) == metrics;
    if let Some((i, name)) = names.iter().enumerate().find(|(i, _)| !used(*i)) {
        return Err(format!(
            "passed socket {} (fd {}, named {name:?}) has no use: name them {HTTP}, {CARD_TLS} or {METRICS}",
            i + 1,
            i + 3
        ));
    }
    Ok(Some(Plan { count, http, card_tls, metrics }))
}

/// The listening sockets this process was given.
#[derive(Debug, Default)]
pub struct Inherited {
    pub http: Option<TcpListener>,
    pub card_tls: Option<TcpListener>,
    pub metrics: Option<TcpListener>,
}

/// Takes the sockets passed to this process and clears the variables, so that nothing this
/// process starts believes they are meant for it. Call it before any thread is started (it
/// changes the environment).
pub fn take() -> Result<Inherited, String> {
    let var = |k: &str| std::env::var(k).ok();
    let plan = plan(
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    );
    // listenfd applies the same LISTEN_FDS/LISTEN_PID rules, owns the descriptors from here,
    // checks each is a TCP socket, marks it close-on-exec and clears those two variables.
    let mut fds = listenfd::ListenFd::from_env();
    std::env::remove_var("LISTEN_FDNAMES");
    let Some(plan) = plan? else { return Ok(Inherited::default()) };
    if fds.len() != plan.count {
        return Err(format!("LISTEN_FDS: {} socket(s) announced, {} usable", plan.count, fds.len()));
    }
    let mut tcp = |i: Option<usize>, what: &str| -> Result<Option<TcpListener>, String> {
        let Some(i) = i else { return Ok(None) };
        match fds.take_tcp_listener(i) {
            Ok(Some(l)) => Ok(Some(l)),
            Ok(None) => Err(format!("passed socket for {what} (fd {}) is missing", i + 3)),
            Err(e) => Err(format!("passed socket for {what} (fd {}): {e}", i + 3)),
        }
    };
    Ok(Inherited {
        http: tcp(plan.http, HTTP)?,
        card_tls: tcp(plan.card_tls, CARD_TLS)?,
        metrics: tcp(plan.metrics, METRICS)?,
    })
}

/// For the simulators: the socket passed as `http` (or the only one) when started with socket
/// activation, else `bind` bound (port 0 lets the system pick). The address is printed on one
/// standard-output line, `listening on ADDR`, for whoever started the process to read.
pub fn listener_or_bind(bind: &str) -> std::io::Result<TcpListener> {
    let listener = match take().map_err(std::io::Error::other)?.http {
        Some(l) => l,
        None => TcpListener::bind(bind)?,
    };
    println!("listening on {}", listener.local_addr()?);
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(fds: &str, pid: Option<&str>, names: Option<&str>) -> Option<Plan> {
        plan(Some(fds), pid, names, 4242).unwrap()
    }

    #[test]
    fn nothing_passed_means_bind_as_configured() {
        assert_eq!(plan(None, None, None, 4242), Ok(None));
        assert_eq!(ok("0", None, None), None);
    }

    #[test]
    fn one_unnamed_socket_is_the_main_site() {
        assert_eq!(ok("1", None, None), Some(Plan { count: 1, http: Some(0), card_tls: None, metrics: None }));
        // systemd names a socket after its unit when FileDescriptorName= is not set.
        assert_eq!(
            ok("1", Some("4242"), Some("idp.socket")),
            Some(Plan { count: 1, http: Some(0), card_tls: None, metrics: None })
        );
    }

    #[test]
    fn named_sockets_are_matched_by_name_in_any_order() {
        let both = Some(Plan { count: 2, http: Some(1), card_tls: Some(0), metrics: None });
        assert_eq!(ok("2", None, Some("card-tls:http")), both);
        assert_eq!(
            ok("2", Some("4242"), Some("http:card-tls")),
            Some(Plan { count: 2, http: Some(0), card_tls: Some(1), metrics: None })
        );
        // The card listener's socket named, the main site's left to its unit name.
        assert_eq!(ok("2", None, Some("card-tls:idp.socket")), both);
        // Only the card listener passed: the main site binds `http.bind` as usual.
        assert_eq!(
            ok("1", None, Some("card-tls")),
            Some(Plan { count: 1, http: None, card_tls: Some(0), metrics: None })
        );
    }

    #[test]
    fn sockets_meant_for_another_process_are_not_taken() {
        assert_eq!(ok("2", Some("4243"), Some("http:card-tls")), None);
        // An empty LISTEN_PID is no check at all (as when the starter cannot know the pid).
        assert_eq!(ok("1", Some(""), None), Some(Plan { count: 1, http: Some(0), card_tls: None, metrics: None }));
    }

    #[test]
    fn inconsistent_variables_are_an_error_not_a_guess() {
        assert!(plan(Some("two"), None, None, 4242).unwrap_err().contains("LISTEN_FDS"));
        assert!(plan(Some("1"), Some("me"), None, 4242).unwrap_err().contains("LISTEN_PID"));
        assert!(plan(Some("2"), None, Some("http"), 4242).unwrap_err().contains("1 name(s) for 2"));
        assert!(plan(Some("2"), None, Some("http:http"), 4242).unwrap_err().contains("more than one"));
        assert!(plan(Some("2"), None, Some("http:stats"), 4242).unwrap_err().contains("\"stats\""));
        assert!(plan(Some("2"), None, None, 4242).unwrap_err().contains("fd 4"));
    }

    #[test]
    fn the_metrics_socket_is_matched_by_name_and_is_never_the_main_site() {
        assert_eq!(
            ok("2", None, Some("metrics:http")),
            Some(Plan { count: 2, http: Some(1), card_tls: None, metrics: Some(0) })
        );
        assert_eq!(
            ok("2", None, Some("metrics:")),
            Some(Plan { count: 2, http: Some(1), card_tls: None, metrics: Some(0) })
        );
        assert_eq!(
            ok("1", None, Some("metrics")),
            Some(Plan { count: 1, http: None, card_tls: None, metrics: Some(0) })
        );
    }
}
