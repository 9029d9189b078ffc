//! Input rules shared by the areas; each check records a reason per field.

use unicode_normalization::UnicodeNormalization;

use crate::error::{AppError, AppResult, FieldErrors};

/// Longest username, in characters.
pub const MAX_USERNAME: usize = 64;
/// Longest email address, in characters.
pub const MAX_EMAIL: usize = 254;
/// Shortest password, in characters.
pub const MIN_PASSWORD: usize = 8;
/// Longest password, in characters.
pub const MAX_PASSWORD: usize = 64;
/// Longest bio, in characters.
pub const MAX_BIO: usize = 4_000;
/// Longest image URL, in characters.
pub const MAX_URL: usize = 2_048;
/// Longest article title or description, in characters.
pub const MAX_TITLE: usize = 500;
/// Longest article or comment body, in characters.
pub const MAX_BODY: usize = 100_000;
/// Longest tag name, in characters.
pub const MAX_TAG: usize = 64;
/// Most tags on one article.
pub const MAX_TAGS: usize = 20;

/// Records `reason` for `field` unless the field already has one.
fn fail(errors: &mut FieldErrors, field: &str, reason: impl Into<String>) {
    errors
        .entry(field.to_owned())
        .or_insert_with(|| reason.into());
}

/// Non-blank and at most `max` characters.
pub fn required(errors: &mut FieldErrors, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        fail(errors, field, "must not be blank");
    }
    max_chars(errors, field, value, max);
}

/// At most `max` characters, and no NUL character (which no database stores in text).
pub fn max_chars(errors: &mut FieldErrors, field: &str, value: &str, max: usize) {
    if value.contains('\0') {
        fail(errors, field, "must not contain NUL characters");
    }
    let length = value.chars().count();
    if length > max {
        fail(
            errors,
            field,
            format!("must be at most {max} characters (got {length})"),
        );
    }
}

/// A username as stored and looked up: NFKC-normalised (so `ｊａｋｅ` is `jake`) and trimmed.
pub fn normalize_username(value: &str) -> String {
    value.nfkc().collect::<String>().trim().to_owned()
}

/// Characters no username may hold: controls, and the invisible ones that make two names look
/// alike or reorder text (zero-width, joiners, bidirectional controls, fillers, tags).
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFFB}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// A username: non-blank once normalised, at most [`MAX_USERNAME`] characters, no control or
/// invisible characters; the normalised name ([`normalize_username`]).
pub fn username(errors: &mut FieldErrors, value: &str) -> String {
    let normalized = normalize_username(value);
    required(errors, "username", &normalized, MAX_USERNAME);
    if normalized.chars().any(invisible) {
        fail(
            errors,
            "username",
            "must not contain control, zero-width or bidirectional characters",
        );
    }
    normalized
}

/// An email address: `local@domain.tld`, no spaces, at most [`MAX_EMAIL`] characters.
pub fn email(errors: &mut FieldErrors, value: &str) {
    required(errors, "email", value, MAX_EMAIL);
    let valid = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !value.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if !valid {
        fail(errors, "email", "must be a valid email address");
    }
}

/// A password: [`MIN_PASSWORD`] to [`MAX_PASSWORD`] characters.
pub fn password(errors: &mut FieldErrors, value: &str) {
    let length = value.chars().count();
    max_chars(errors, "password", value, MAX_PASSWORD);
    if value.trim().is_empty() {
        fail(errors, "password", "must not be blank");
    } else if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&length) {
        fail(
            errors,
            "password",
            format!("must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long"),
        );
    }
}

/// BAD_USER_INPUT when any field failed.
pub fn finish(errors: FieldErrors) -> AppResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::invalid_fields(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_invisible_characters_refused() {
        let mut errors = FieldErrors::new();
        assert_eq!(username(&mut errors, "ｊａｋｅ"), "jake");
        assert!(errors.is_empty());
        for hostile in [
            "ja\u{200B}ke",
            "ja\u{202E}ke",
            "ja\u{0007}ke",
            "\u{2066}jake",
        ] {
            let mut errors = FieldErrors::new();
            username(&mut errors, hostile);
            assert!(errors.contains_key("username"), "{hostile:?}");
        }
    }
}
