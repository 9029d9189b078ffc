//! URL slugs from titles.

/// Longest slug base, in characters (a suffix may follow).
const MAX_SLUG_BASE: usize = 80;

/// The slug of `title`: lowercase letters and digits joined by single dashes, `article` when
/// nothing is left.
pub fn slugify(title: &str) -> String {
    let mut slug = String::new();
    let mut dash = false;
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if dash && !slug.is_empty() {
                slug.push('-');
            }
            dash = false;
            slug.push(c);
            if slug.chars().count() >= MAX_SLUG_BASE {
                break;
            }
        } else {
            dash = true;
        }
    }
    if slug.is_empty() {
        "article".to_owned()
    } else {
        slug
    }
}

/// `base` with a random suffix, for a title whose plain slug is taken.
pub fn with_suffix(base: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let suffix: String = (0..8)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{base}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_keep_letters_and_digits_only() {
        assert_eq!(
            slugify("How to Train Your Dragon!"),
            "how-to-train-your-dragon"
        );
        assert_eq!(
            slugify("  --Rust 2024: what's new?  "),
            "rust-2024-what-s-new"
        );
        assert_eq!(slugify("Ünïcödé Straße"), "ünïcödé-straße");
        assert_eq!(slugify("🎉🎉"), "article");
    }

    #[test]
    fn suffixed_slugs_differ() {
        assert_ne!(with_suffix("a"), with_suffix("a"));
        assert!(with_suffix("title").starts_with("title-"));
    }
}
