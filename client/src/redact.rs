//! Masking personal data in released transcripts: e-mail addresses, IBANs (mod-97 checked),
//! payment card numbers (Luhn checked) and phone numbers.
//!
//! Hand-written scanners rather than regular expressions: each is a few lines, has no
//! backtracking, and checks the number it found (Luhn, mod 97) before masking it, so an order
//! number is not mistaken for a card.

/// What replaces an e-mail address.
pub const EMAIL_MASK: &str = "[email redacted]";
/// What replaces an IBAN.
pub const IBAN_MASK: &str = "[IBAN redacted]";
/// What replaces a card number.
pub const CARD_MASK: &str = "[card number redacted]";
/// What replaces a phone number.
pub const PHONE_MASK: &str = "[phone redacted]";

/// Masks every e-mail address, IBAN, card number and phone number in `text`.
pub fn redact(text: &str) -> String {
    let s = mask_emails(text);
    let s = mask_ibans(&s);
    mask_numbers(&s)
}

/// Whether `text` holds anything [`redact`] masks: a redacted export withholds such a message
/// whole rather than show a masked text no signature covers.
pub fn contains_personal_data(text: &str) -> bool {
    redact(text) != text
}

fn mask_emails(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let trimmed = word.trim_matches(|c: char| {
            matches!(
                c,
                ',' | '.' | ';' | ':' | '!' | '?' | '(' | ')' | '<' | '>' | '"' | '\''
            )
        });
        let is_email = trimmed.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c))
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
        });
        if is_email {
            out.push_str(&word.replacen(trimmed, EMAIL_MASK, 1));
        } else {
            out.push_str(word);
        }
    }
    out
}

fn mask_ibans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        if starts_word
            && i + 4 <= chars.len()
            && chars[i].is_ascii_uppercase()
            && chars[i + 1].is_ascii_uppercase()
            && chars[i + 2].is_ascii_digit()
            && chars[i + 3].is_ascii_digit()
        {
            // Collect alphanumerics, allowing single spaces between groups.
            let mut j = i;
            let mut compact = String::new();
            let mut end = i;
            while j < chars.len() {
                let c = chars[j];
                if c.is_ascii_alphanumeric() {
                    compact.push(c.to_ascii_uppercase());
                    j += 1;
                    end = j;
                } else if c == ' ' && j + 1 < chars.len() && chars[j + 1].is_ascii_alphanumeric() {
                    j += 1;
                } else {
                    break;
                }
                if compact.len() > 34 {
                    break;
                }
            }
            // Try the longest valid IBAN prefix.
            let mut matched = None;
            for len in (15..=compact.len().min(34)).rev() {
                if iban_valid(&compact[..len]) {
                    matched = Some(len);
                    break;
                }
            }
            if let Some(len) = matched {
                // Find where the len-th alphanumeric ends.
                let mut count = 0;
                let mut k = i;
                while k < end && count < len {
                    if chars[k].is_ascii_alphanumeric() {
                        count += 1;
                    }
                    k += 1;
                }
                out.push_str(IBAN_MASK);
                i = k;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn iban_valid(iban: &str) -> bool {
    if iban.len() < 15 || iban.len() > 34 {
        return false;
    }
    let (head, tail) = iban.split_at(4);
    let mut rem: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Masks digit runs (with spaces, dashes, dots, parentheses and a leading `+` inside) that are
/// Luhn-valid card numbers (13–19 digits) or look like phone numbers (7–15 digits).
fn mask_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts = (c.is_ascii_digit() || c == '+' || c == '(')
            && (i == 0 || !chars[i - 1].is_ascii_alphanumeric());
        if starts {
            let mut j = i;
            let mut digits = String::new();
            let mut end = i;
            while j < chars.len() {
                let d = chars[j];
                if d.is_ascii_digit() {
                    digits.push(d);
                    j += 1;
                    end = j;
                } else if d == ')'
                    || ((d == ' ' || d == '-' || d == '.' || d == '(' || (d == '+' && j == i))
                        && j + 1 < chars.len()
                        && (chars[j + 1].is_ascii_digit() || chars[j + 1] == '('))
                {
                    // A separator inside the number (a closing parenthesis may be followed by
                    // a space).
                    j += 1;
                } else {
                    break;
                }
            }
            let followed_by_alnum = end < chars.len() && chars[end].is_ascii_alphanumeric();
            let n = digits.len();
            if !followed_by_alnum {
                if (13..=19).contains(&n) && luhn(&digits) {
                    out.push_str(CARD_MASK);
                    i = end;
                    continue;
                }
                let phoneish = (7..=15).contains(&n)
                    && (c == '+' || c == '(' || has_separator(&chars[i..end]) || n >= 10);
                if phoneish {
                    out.push_str(PHONE_MASK);
                    i = end;
                    continue;
                }
            }
            // Not sensitive: copy the run as it was.
            let stop = end.max(i + 1);
            out.extend(&chars[i..stop]);
            i = stop;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

fn has_separator(run: &[char]) -> bool {
    run.iter().any(|c| matches!(c, ' ' | '-' | '.' | '(' | ')'))
}

fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_personal_data() {
        let r = redact("mail me at carol.smith+x@example.co.uk, thanks");
        assert_eq!(r, format!("mail me at {EMAIL_MASK}, thanks"));
        let r = redact("card 4111 1111 1111 1111 please");
        assert_eq!(r, format!("card {CARD_MASK} please"));
        let r = redact("IBAN GB82 WEST 1234 5698 7654 32 ok");
        assert_eq!(r, format!("IBAN {IBAN_MASK} ok"));
        let r = redact("call +44 20 7946 0958 now");
        assert_eq!(r, format!("call {PHONE_MASK} now"));
        let r = redact("or (555) 123-4567.");
        assert_eq!(r, format!("or {PHONE_MASK}."));
    }

    #[test]
    fn leaves_ordinary_numbers_alone() {
        for s in [
            "order #1234 never arrived",
            "it costs 19.99",
            "4111 1111 1111 1112 is not Luhn-valid but long",
            "room 101",
            "GB82 is not an IBAN",
        ] {
            assert_eq!(redact(s), s);
        }
    }
}
