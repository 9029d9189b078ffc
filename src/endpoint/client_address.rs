//! The client's address: the peer's, or behind trusted reverse proxies the one they recorded.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};

/// The client's address, from `header` (set by trusted proxies: `x-forwarded-for`, `x-real-ip`)
/// when given, to which `trusted_proxies` proxies append. Entries are read across every line of
/// the header, left to right; each trusted proxy appends the address it received the request
/// from, so the entry `trusted_proxies` from the right is the last one a trusted hop wrote, and
/// whatever a client put further left is never used. Without the header (or with an unreadable
/// entry there) the peer's address is used.
pub fn resolve(
    headers: &HeaderMap,
    peer: SocketAddr,
    header: Option<&HeaderName>,
    trusted_proxies: usize,
) -> IpAddr {
    let Some(name) = header else {
        return peer.ip();
    };
    let entries: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect();
    let Some(index) = entries.len().checked_sub(trusted_proxies.max(1)) else {
        // A shorter chain than the proxies configured: the first hop wrote the leftmost.
        return entries
            .first()
            .and_then(|entry| parse(entry))
            .unwrap_or_else(|| peer.ip());
    };
    parse(entries[index]).unwrap_or_else(|| peer.ip())
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:80`.
fn parse(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(lines: &[&str], proxies: usize) -> String {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().expect("value"));
        }
        let header = HeaderName::from_static("x-forwarded-for");
        resolve(
            &headers,
            "10.9.9.9:1234".parse().expect("peer"),
            Some(&header),
            proxies,
        )
        .to_string()
    }

    #[test]
    fn the_client_is_counted_from_the_right_across_lines() {
        assert_eq!(address(&["6.6.6.6, 1.1.1.1"], 1), "1.1.1.1");
        assert_eq!(address(&["6.6.6.6", "1.1.1.1, 2.2.2.2"], 2), "1.1.1.1");
        assert_eq!(address(&["6.6.6.6", "[2001:db8::1]:443"], 1), "2001:db8::1");
        assert_eq!(address(&["1.1.1.1"], 3), "1.1.1.1");
        assert_eq!(address(&["not an address"], 1), "10.9.9.9");
        assert_eq!(address(&[], 1), "10.9.9.9");
    }
}
