//! Splits RFC 1035 zone-file text into logical entries (one record or
//! directive each, parentheses joined, comments dropped), each with the line
//! it starts on. hickory's parser does not report lines, so we cut the text
//! here and hand hickory one entry at a time; every error can then name its
//! line.

/// One word of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    /// As written, with any backslash escapes kept; without the quotes:
    /// a slice of the zone file's text.
    pub text: &'a str,
    /// Written between double quotes.
    pub quoted: bool,
}

/// One record or directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The line (1-based) the entry starts on.
    pub line: usize,
    /// The entry starts with white space: the owner is the previous one's.
    pub owner_blank: bool,
    pub tokens: Vec<Token<'a>>,
}

/// A lexical error: an unclosed quote or parenthesis, a stray `)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub line: usize,
    pub message: String,
}

/// Cuts `text` into entries, handing each to `f` as it is complete (one
/// entry is held at a time, its words borrowed from `text`). Stops at the
/// first lexical error.
pub fn each_entry<'a>(text: &'a str, mut f: impl FnMut(&Entry<'a>)) -> Result<(), LexError> {
    let bytes = text.as_bytes();
    let mut line = 1;
    let mut depth = 0usize;
    let mut paren_line = 0;
    let mut entry = Entry {
        line: 1,
        owner_blank: false,
        tokens: Vec::with_capacity(16),
    };
    // Where the word under way starts.
    let mut word: Option<usize> = None;
    let mut at_line_start = true;
    let mut i = 0;
    // The delimiters are ASCII, which no byte of a multi-byte UTF-8
    // character equals: the text is cut on bytes, at character bounds.
    let end_word = |word: &mut Option<usize>, entry: &mut Entry<'a>, at: usize| {
        if let Some(start) = word.take() {
            entry.tokens.push(Token {
                text: &text[start..at],
                quoted: false,
            });
        }
    };
    while i < bytes.len() {
        let c = bytes[i];
        if at_line_start && depth == 0 {
            at_line_start = false;
            if !entry.tokens.is_empty() {
                f(&entry);
            }
            entry.tokens.clear();
            entry.line = line;
            entry.owner_blank = c == b' ' || c == b'\t';
        }
        match c {
            b'\n' => {
                end_word(&mut word, &mut entry, i);
                line += 1;
                at_line_start = true;
            }
            b' ' | b'\t' | b'\r' => end_word(&mut word, &mut entry, i),
            b';' => {
                end_word(&mut word, &mut entry, i);
                while i + 1 < bytes.len() && bytes[i + 1] != b'\n' {
                    i += 1;
                }
            }
            b'(' => {
                end_word(&mut word, &mut entry, i);
                if depth == 0 {
                    paren_line = line;
                }
                depth += 1;
            }
            b')' => {
                end_word(&mut word, &mut entry, i);
                if depth == 0 {
                    return Err(LexError {
                        line,
                        message: "`)` without an opening `(`".into(),
                    });
                }
                depth -= 1;
            }
            b'"' => {
                end_word(&mut word, &mut entry, i);
                let start_line = line;
                let start = i + 1;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(LexError {
                                line: start_line,
                                message: "quoted string is not closed: expected a closing `\"`"
                                    .into(),
                            });
                        }
                        Some(b'"') => break,
                        Some(b'\\') => {
                            if bytes.get(i + 1) == Some(&b'\n') {
                                line += 1;
                            }
                            i += 2;
                            continue;
                        }
                        Some(b'\n') => line += 1,
                        Some(_) => {}
                    }
                    i += 1;
                }
                entry.tokens.push(Token {
                    text: &text[start..i],
                    quoted: true,
                });
            }
            b'\\' => {
                word.get_or_insert(i);
                // The escaped character is the word's, unless it ends the line.
                if i + 1 < bytes.len() && bytes[i + 1] != b'\n' {
                    i += 1;
                    // A multi-byte character: to its last byte.
                    while i + 1 < bytes.len() && (bytes[i + 1] & 0xC0) == 0x80 {
                        i += 1;
                    }
                }
            }
            _ => {
                word.get_or_insert(i);
            }
        }
        i += 1;
    }
    end_word(&mut word, &mut entry, bytes.len());
    if depth > 0 {
        return Err(LexError {
            line: paren_line,
            message: "`(` is never closed: expected a matching `)`".into(),
        });
    }
    if !entry.tokens.is_empty() {
        f(&entry);
    }
    Ok(())
}

/// Every entry of `text`.
#[cfg(test)]
pub fn entries(text: &str) -> Result<Vec<Entry<'_>>, LexError> {
    let mut out = Vec::new();
    each_entry(text, |e| out.push(e.clone()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words<'a>(e: &Entry<'a>) -> Vec<&'a str> {
        e.tokens.iter().map(|t| t.text).collect()
    }

    #[test]
    fn parentheses_join_lines_and_keep_the_first_line() {
        let text = "; header\n@ IN SOA a. b. (\n  1 ; serial\n  2 3 4 5 )\nwww A 192.0.2.1\n";
        let e = entries(text).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].line, 2);
        assert_eq!(
            words(&e[0]),
            ["@", "IN", "SOA", "a.", "b.", "1", "2", "3", "4", "5"]
        );
        assert_eq!(e[1].line, 5);
    }

    #[test]
    fn blank_owner_and_quoted_strings_with_semicolons() {
        let e = entries("x TXT \"a;b\" \"c\\\"d\"\n  TXT ( \"multi\"\n \"line\" )\n").unwrap();
        assert!(!e[0].owner_blank);
        assert_eq!(words(&e[0]), ["x", "TXT", "a;b", "c\\\"d"]);
        assert!(e[0].tokens[2].quoted);
        assert!(e[1].owner_blank);
        assert_eq!(words(&e[1]), ["TXT", "multi", "line"]);
    }

    #[test]
    fn unclosed_parenthesis_names_the_line_it_opened_on() {
        let err = entries("a A 1.2.3.4\nb TXT ( \"x\"\n\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn unclosed_quote_is_an_error() {
        let err = entries("a TXT \"open\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("not closed"));
    }
}
