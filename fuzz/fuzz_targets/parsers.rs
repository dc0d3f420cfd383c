//! Every small parser the API runs on untrusted text, one per first byte:
//! no panic on any input, and what a parser accepts keeps its rules.
#![no_main]

use std::time::Duration;

use flashcoupon::auth::TokenKeys;
use flashcoupon::domain::account::{Email, Password, Role};
use flashcoupon::domain::ids::UserId;
use flashcoupon::domain::timestamp::Timestamp;
use flashcoupon::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 7 {
        0 => email(&text),
        1 => idempotency_key(rest),
        2 => timestamp(&text),
        3 => csv_field(&text),
        4 => {
            // A socket's first message: never a panic, an auth only when asked.
            if let Some(token) = fuzzing::client_auth_token(&text) {
                assert!(text.contains("auth"), "{text:?} read as an auth message");
                let _ = token;
            }
        }
        5 => token(rest),
        _ => {
            if let Ok(p) = Password::parse(text.to_string()) {
                assert!((8..=256).contains(&p.expose().chars().count()));
            }
        }
    }
});

/// Accepted ⇒ lower case, one `@` with something before it and a dot in
/// the domain, no white space or control character, at most 254 characters
/// as sent, and (when lower-casing did not lengthen it) parsing it again
/// gives itself.
fn email(text: &str) {
    let Ok(e) = Email::parse(text) else {
        return;
    };
    let s = e.as_str();
    assert!(!s.is_empty() && text.chars().count() <= 254, "{s:?}");
    assert_eq!(s.to_lowercase(), s, "not lower case");
    assert!(!s.chars().any(|c| c.is_whitespace() || c.is_control()), "{s:?}");
    assert_eq!(s.matches('@').count(), 1, "{s:?}");
    let (local, domain) = s.split_once('@').expect("one @");
    assert!(!local.is_empty() && domain.contains('.'), "{s:?}");
    if s.chars().count() <= 254 {
        assert_eq!(Email::parse(s).expect("its own form parses"), e, "not idempotent");
    }
}

/// Accepted ⇒ 1..=128 printable ASCII characters, exactly the bytes sent.
fn idempotency_key(raw: &[u8]) {
    if let Some(key) = fuzzing::idempotency_key(raw) {
        assert!((1..=128).contains(&key.len()));
        assert!(key.bytes().all(|b| (0x20..0x7f).contains(&b)));
        assert_eq!(key.as_bytes(), raw);
    }
}

/// Accepted ⇒ within 2000..=9999, and what the API writes back reads as the
/// same instant.
fn timestamp(text: &str) {
    let Ok(t) = Timestamp::parse_rfc3339(text) else {
        return;
    };
    let again = Timestamp::parse_rfc3339(&t.to_string()).expect("its own form parses");
    assert_eq!(again, t, "{text:?} -> {t}");
}

/// The winners CSV: a field reads back (RFC 4180) as the text, defused with
/// a leading `'` when a spreadsheet would run it as a formula.
fn csv_field(text: &str) {
    let out = fuzzing::csv_field(text);
    let read = match out.strip_prefix('"') {
        Some(quoted) => {
            let inner = quoted.strip_suffix('"').expect("closing quote");
            assert!(!inner.replace("\"\"", "").contains('"'), "stray quote in {out:?}");
            inner.replace("\"\"", "\"")
        }
        None => {
            assert!(!out.contains([',', '"', '\n', '\r']), "unquoted {out:?}");
            out.clone()
        }
    };
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    assert!(!read.starts_with(['=', '+', '-', '@', '\t', '\r']), "{read:?} runs as a formula");
    assert_eq!(read, if formula { format!("'{text}") } else { text.to_owned() });
}

/// Bearer tokens: whatever the bytes (also spliced into a genuine token),
/// nothing verifies as anyone but the user the genuine token names.
fn token(raw: &[u8]) {
    let keys = TokenKeys::new(&[7u8; 32], Duration::from_secs(3600), "g1");
    let user: UserId = "01930000-0000-7000-8000-000000000001".parse().expect("an id");
    let genuine = keys.issue(user, Role::User, 0);
    let at = raw.first().map_or(0, |&b| b as usize % (genuine.len() + 1));
    let spliced = format!(
        "{}{}",
        &genuine[..at],
        String::from_utf8_lossy(raw.get(1..).unwrap_or_default())
    );
    for candidate in [String::from_utf8_lossy(raw).into_owned(), spliced] {
        if let Some(claims) = keys.verify(&candidate) {
            assert_eq!(claims.sub, user, "a forged token verified");
            assert_eq!(claims.role, Role::User, "a forged role verified");
        }
    }
}
