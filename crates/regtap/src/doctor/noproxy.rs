//! Whether a Go program sends a request through its proxy, the way
//! `golang.org/x/net/http/httpproxy` (behind `http.ProxyFromEnvironment`)
//! decides it: never for `localhost` or a loopback IP, then `NO_PROXY`.

use std::net::IpAddr;

/// Why a Go client would not use its proxy for `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bypass {
    /// `localhost` or a loopback IP: Go never proxies those, whatever the
    /// environment says.
    Loopback,
    /// This `NO_PROXY` entry matches.
    NoProxy(String),
}

/// `None` when Go would send a request for `host:port` through the proxy.
pub fn bypass(host: &str, port: u16, no_proxy: Option<&str>) -> Option<Bypass> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
        return Some(Bypass::Loopback);
    }
    for raw in no_proxy.unwrap_or("").split(',') {
        let entry = raw.trim().to_ascii_lowercase();
        if entry.is_empty() {
            continue;
        }
        if entry == "*" || entry_matches(&entry, &host, ip, port) {
            return Some(Bypass::NoProxy(raw.trim().to_owned()));
        }
    }
    None
}

fn entry_matches(entry: &str, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
    if let Some((net, bits)) = entry.split_once('/') {
        return match (net.parse::<IpAddr>(), bits.parse::<u8>(), ip) {
            (Ok(net), Ok(bits), Some(ip)) => in_cidr(ip, net, bits),
            _ => false,
        };
    }
    if let Ok(entry_ip) = entry.parse::<IpAddr>() {
        return ip == Some(entry_ip);
    }
    let (name, entry_port) = match super::split_host_port(entry) {
        (name, Some(p)) => (name, Some(p)),
        _ => (entry, None),
    };
    if let Ok(entry_ip) = name.parse::<IpAddr>() {
        return ip == Some(entry_ip) && entry_port.is_none_or(|p| p == port);
    }
    if entry_port.is_some_and(|p| p != port) {
        return false;
    }
    // `*.example.com` is read as `.example.com`.
    let name = name
        .strip_prefix('*')
        .filter(|rest| rest.starts_with('.'))
        .unwrap_or(name);
    // `.example.com` matches subdomains only; `example.com` also itself.
    match name.strip_prefix('.') {
        Some(_) => host.ends_with(name),
        None => host == name || host.ends_with(&format!(".{name}")),
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_never_proxied() {
        for host in ["localhost", "127.0.0.1", "127.5.0.9", "::1", "LOCALHOST."] {
            assert_eq!(bypass(host, 5000, None), Some(Bypass::Loopback), "{host}");
        }
        assert_eq!(bypass("registry.test", 5000, None), None);
        assert_eq!(bypass("10.0.0.1", 443, Some("")), None);
    }

    #[test]
    fn no_proxy_entries_as_go_reads_them() {
        let no_proxy = Some("localhost, .corp.example,registry.test:5000,10.0.0.0/8,fd00::1,*.svc");
        let cases = [
            ("a.corp.example", 443, Some(".corp.example")),
            ("corp.example", 443, None), // a leading dot: subdomains only
            ("registry.test", 5000, Some("registry.test:5000")),
            ("registry.test", 443, None), // the port must match
            ("10.1.2.3", 443, Some("10.0.0.0/8")),
            ("11.1.2.3", 443, None),
            ("fd00::1", 443, Some("fd00::1")),
            ("x.svc", 443, Some("*.svc")),
            ("docker.io", 443, None),
        ];
        for (host, port, expected) in cases {
            assert_eq!(
                bypass(host, port, no_proxy),
                expected.map(|e| Bypass::NoProxy(e.to_owned())),
                "{host}:{port}"
            );
        }
        assert_eq!(
            bypass("registry-1.docker.io", 443, Some("docker.io")),
            Some(Bypass::NoProxy("docker.io".to_owned()))
        );
        assert_eq!(
            bypass("anything", 1, Some("*")),
            Some(Bypass::NoProxy("*".to_owned()))
        );
    }
}
