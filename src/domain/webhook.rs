//! Webhook rules that need no I/O (contract v3, Standard Webhooks 1.0): which
//! URLs an endpoint may have, which addresses keymeter may call, the signing
//! secret and the signature, and which event types a filter may name.
//! Resolving a host and calling it are `service::webhooks`'s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use url::Url;

use super::audit::Action;
use crate::error::{Error, Result};

/// Most characters of an endpoint's URL.
pub const MAX_URL_CHARS: usize = 2048;
/// Most endpoints one account may have.
pub const MAX_ENDPOINTS: u64 = 10;
/// The event sendTestWebhook sends, whatever an endpoint's filter.
pub const TEST_EVENT: &str = "webhook.test";

/// An endpoint's URL, checked for its form (not yet for where its host
/// resolves: that takes I/O, at creation and again at every attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// https:// only, or http:// too when private addresses are allowed
    /// (plain http is for receivers on the developer's own machine); a
    /// host; at most 2,048 characters.
    pub fn parse(raw: &str, allow_private: bool) -> Result<Self> {
        let raw = raw.trim();
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(Error::bad_input(format!(
                "url: at most {MAX_URL_CHARS} characters"
            )));
        }
        let url = Url::parse(raw)
            .map_err(|_| Error::bad_input("url: not a URL such as https://example.com/webhooks"))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_private => {}
            "http" => return Err(Error::bad_input("url: must be https://")),
            _ => return Err(Error::bad_input("url: must be https://")),
        }
        if url.host().is_none() {
            return Err(Error::bad_input("url: has no host"));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host as it is resolved: a name, or an address literal without
    /// IPv6's brackets.
    pub fn host(&self) -> String {
        match self.0.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => String::new(),
        }
    }

    /// The host's address when the URL names one literally: no lookup then.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        match self.0.host()? {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        }
    }

    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(443)
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

/// Why keymeter refuses to call `ip`, or None when it is a public address.
/// Anything that is not plainly on the public internet is refused: an
/// endpoint reaching into keymeter's own network (the cloud metadata
/// service at 169.254.169.254, a database on 10.x) is the attack.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => refusal_v4(ip),
        IpAddr::V6(ip) => refusal_v6(ip),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_broadcast() || a >= 240 {
        Some("a reserved address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (CGNAT) address")
    } else if a == 192 && b == 0 && c == 0 {
        Some("an IETF protocol address")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("a benchmarking address")
    } else if ip.is_documentation() {
        Some("a documentation address")
    } else {
        None
    }
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // An IPv4 address in IPv6 clothing is judged as the IPv4 address:
    // ::ffff:127.0.0.1 reaches loopback as surely as 127.0.0.1.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refusal_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) and the deprecated IPv4-compatible form (::/96).
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..6] == [0; 6] {
        if ip.is_loopback() {
            return Some("a loopback address");
        }
        if ip.is_unspecified() {
            return Some("an unspecified address");
        }
        let embedded = Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32);
        return refusal_v4(embedded).or(Some("an IPv4-embedding address"));
    }
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if segments[0] & 0xfe00 == 0xfc00 {
        Some("a unique-local address")
    } else if segments[0] & 0xffc0 == 0xfe80 || segments[0] & 0xffc0 == 0xfec0 {
        Some("a link-local address")
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        Some("a documentation address")
    } else if segments[0] == 0x2002 {
        // 6to4 embeds an IPv4 address that may be a private one.
        let embedded = Ipv4Addr::from(((segments[1] as u32) << 16) | segments[2] as u32);
        refusal_v4(embedded)
    } else {
        None
    }
}

/// An endpoint's event filter: known event types, each once; empty
/// receives every event.
pub fn parse_events(events: &[String]) -> Result<Vec<String>> {
    let mut parsed: Vec<String> = Vec::with_capacity(events.len());
    for name in events {
        let name = name.trim();
        let known = name == TEST_EVENT || Action::parse(name).is_some();
        if !known {
            return Err(Error::bad_input(format!(
                "events: {name:?} is not an event type"
            )));
        }
        if !parsed.iter().any(|seen| seen == name) {
            parsed.push(name.to_owned());
        }
    }
    Ok(parsed)
}

/// A signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS random source is unavailable");
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The webhook-signature header for one attempt: `v1,` and the base64 of
/// HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the decoded part
/// of the secret after `whsec_`. None for a secret keymeter did not make.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_")?)
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    let code = mac.finalize().into_bytes();
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(code)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_callable() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "ff02::1",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(refusal(ip).is_some(), "{refused} must be refused");
        }
        for allowed in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = allowed.parse().unwrap();
            assert_eq!(refusal(ip), None, "{allowed} must be allowed");
        }
    }

    #[test]
    fn urls_are_https_unless_private_addresses_are_allowed() {
        assert!(WebhookUrl::parse("https://example.com/hooks", false).is_ok());
        assert!(WebhookUrl::parse("http://example.com/hooks", false).is_err());
        assert!(WebhookUrl::parse("http://example.com/hooks", true).is_ok());
        assert!(WebhookUrl::parse("ftp://example.com/", true).is_err());
        assert!(WebhookUrl::parse("not a url", true).is_err());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(WebhookUrl::parse(&long, false).is_err());
        let v6 = WebhookUrl::parse("https://[::1]:8443/", false).unwrap();
        assert_eq!(v6.literal_ip(), Some("::1".parse().unwrap()));
        assert_eq!(v6.port(), 8443);
    }

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, id, 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(new_secret().len(), "whsec_".len() + 44);
        assert!(signature("sk_nope", id, 0, body).is_none());
    }

    #[test]
    fn filters_name_known_events_once() {
        let events = [
            "usage.threshold_reached".to_owned(),
            TEST_EVENT.to_owned(),
            "usage.threshold_reached".to_owned(),
        ];
        assert_eq!(parse_events(&events).unwrap().len(), 2);
        assert!(parse_events(&["key.deleted".to_owned()]).is_err());
    }
}
