//! What "printable" means for text keymeter stores and shows back (key
//! names, emails, endpoints, requestIds): no character that moves, hides or
//! reorders what a reader sees. A bidi override can make a key name read
//! backwards on the dashboard, a zero-width space makes two requestIds that
//! look the same differ, and a NUL is refused by PostgreSQL's text type.

/// Characters refused in printable text: Unicode's control characters (Cc),
/// format characters (Cf: bidi marks, overrides and isolates, zero-width
/// joiners and spaces, the BOM, tags) and the line and paragraph separators
/// (Zl, Zp), which break lines as `\n` does.
pub fn is_unprintable(c: char) -> bool {
    c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// A name people read on the dashboard (a key's, an account's): 1 to 64
/// printable characters after trimming, so that a bidi override or an
/// invisible character cannot make it read as something else.
pub fn display_name(raw: &str) -> crate::error::Result<String> {
    use crate::error::Error;
    let name = raw.trim();
    if !(1..=64).contains(&name.chars().count()) {
        return Err(Error::bad_input("name: 1 to 64 characters after trimming"));
    }
    if !is_printable(name) {
        return Err(Error::bad_input(
            "name: must not contain control, format or bidi characters",
        ));
    }
    Ok(name.to_owned())
}

/// True when `text` holds no unprintable character.
pub fn is_printable(text: &str) -> bool {
    !text.chars().any(is_unprintable)
}

/// General category Cf, as of Unicode 16. The standard library has no
/// general-category query, and this list is short and changes rarely
/// (Unicode 15 last added to it), so it is kept here rather than taking a
/// dependency for it.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_separators_and_invisible_formatting_are_unprintable() {
        let refused = [
            '\u{0}',
            '\u{1}',
            '\n',
            '\r',
            '\t',
            '\u{1b}',
            '\u{7f}',
            '\u{85}',
            '\u{9f}',
            // bidi: embeddings and overrides, isolates, marks, the Arabic letter mark
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200E}',
            '\u{200F}',
            '\u{061C}',
            // zero-width and invisible
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{2064}',
            // tags, line and paragraph separators
            '\u{E0001}',
            '\u{E0041}',
            '\u{E007F}',
            '\u{2028}',
            '\u{2029}',
        ];
        for c in refused {
            assert!(
                is_unprintable(c),
                "U+{:04X} should be unprintable",
                c as u32
            );
        }
    }

    #[test]
    fn letters_of_every_script_symbols_and_spaces_are_printable() {
        for text in [
            "billing service",
            "é ü ß ø",
            "日本語のキー",
            "ключ",
            "مفتاح",
            "🔑 prod",
            "a/b?c=d&e#f",
            "\u{00A0}\u{3000}",
        ] {
            assert!(is_printable(text), "{text:?} should be printable");
        }
    }
}
