use email_address::{EmailAddress, Options};

use super::text::is_printable;
use crate::error::{Error, Result};

/// An email address as keymeter stores and looks it up: trimmed and
/// lower-cased, at most 254 characters, and an address real mail providers
/// hand out (see `parse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// The address grammar is left to `email_address` (dot-atom local part, no
/// leading, trailing or doubled dots; domain labels of at most 63 bytes,
/// starting and ending with a letter or digit). Display names (`Ada <a@b.c>`)
/// and IP-literal domains (`a@[127.0.0.1]`) are RFC 5322 syntax but no
/// provider hands them out, and a dotless domain (`a@localhost`) cannot
/// receive mail from the internet. The local part may be longer than RFC
/// 5321's 64 octets because the contract bounds only the whole address, and
/// accounts with such addresses exist.
const GRAMMAR: Options = Options {
    minimum_sub_domains: 2,
    allow_domain_literal: false,
    allow_display_text: false,
    allow_long_local_parts: true,
};

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self> {
        let email = raw.trim().to_lowercase();
        if email.chars().count() > Self::MAX_CHARS {
            return Err(Error::bad_input("email: at most 254 characters"));
        }
        if email.chars().any(char::is_whitespace) || !is_printable(&email) {
            return Err(Error::bad_input(
                "email: must not contain spaces, control, format or bidi characters",
            ));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(Error::bad_input("email: must contain an '@'"));
        };
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(Error::bad_input(
                "email: exactly one '@' with text on both sides",
            ));
        }
        if !local.chars().all(is_local_char) {
            return Err(Error::bad_input(
                "email: before the '@' only letters, digits and . _ - + ' % are allowed",
            ));
        }
        if !domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
        {
            return Err(Error::bad_input(
                "email: the domain may hold only letters, digits, '-' and '.'",
            ));
        }
        EmailAddress::parse_with_options(&email, GRAMMAR)
            .map_err(|err| Error::bad_input(format!("email: not a valid address ({err})")))?;
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 5322 also allows quoted local parts (`"<svg onload=x>"@a.com`, with
/// spaces, `<`, `>` and `@`) and `! # $ & * / = ? ^ ` { | } ~`, all of which
/// reach a dashboard, a mailer or a log as markup or shell syntax, and none
/// of which Gmail, Outlook or Yahoo issue. They allow letters, digits, `.`,
/// `_`, `-` and `+` (sub-addressing); `'` is kept for names like O'Brien
/// (Google Workspace and Microsoft 365 allow it), `%` for old routed
/// addresses. Letters and digits of any script are kept for internationalized
/// addresses (RFC 6531).
fn is_local_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '\'' | '%')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_surrounding_space() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a@b@c.d",
            "a b@c.d",
            "ada@example",
            "ada@.example.com",
            "ada@example..com",
            "ada@-example.com",
            "ada@example-.com",
            ".ada@example.com",
            "ada.@example.com",
            "a..da@example.com",
            "ada@[127.0.0.1]",
            "Ada <ada@example.com>",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rejects_control_invisible_and_bidi_characters() {
        for bad in [
            "a\u{0}@b.co",
            "ada\u{1}@example.com",
            "ada@example.com\u{7f}",
            "ada\u{202e}moc.elpmaxe@x.com",
            "ad\u{200b}a@example.com",
            "ada@exa\u{200d}mple.com",
            "\u{feff}ada@example.com",
            "ada\u{2066}@example.com",
            "ada\u{200e}@example.com",
            "ada@example.com\u{061c}",
            "ada\u{ad}@example.com",
            "ada\u{2028}@example.com",
        ] {
            let err = Email::parse(bad).unwrap_err();
            assert_eq!(err.code(), "BAD_USER_INPUT", "{bad:?}");
        }
    }

    #[test]
    fn rejects_markup_and_quoted_local_parts() {
        for bad in [
            "<svg/onload=alert(1)>@x.com",
            "<script>@x.com",
            "\"<svg onload=alert(1)>\"@x.com",
            "\"ada\"@example.com",
            "ada@x.com<script>",
            "a&amp;b@x.com",
            "javascript:alert(1)@x.com",
            "a/b@x.com",
            "a=b@x.com",
            "a?b@x.com",
            "a{b}@x.com",
            "ada@exam/ple.com",
            "ada@exam_ple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn accepts_what_providers_issue() {
        for good in [
            "ada@example.com",
            "ada.lovelace+keymeter@mail.example.co.uk",
            "o'brien@example.ie",
            "first_last-1@sub.example.org",
            "user%host@example.com",
            "josé@bücher.de",
            "用户@例子.广告",
            "ada@xn--bcher-kva.de",
            "1@2.io",
        ] {
            assert_eq!(Email::parse(good).unwrap().as_str(), good, "{good:?}");
        }
    }

    #[test]
    fn length_limit_counts_characters_after_trimming() {
        let at_limit = format!("{}@example.com", "a".repeat(254 - 12));
        assert!(Email::parse(&format!("  {at_limit}  ")).is_ok());
        assert!(Email::parse(&format!("a{at_limit}")).is_err());
    }
}
