//! Splits RFC 1035 zone-file text into logical entries (one record or
//! directive each, parentheses joined, comments dropped), each with the line
//! it starts on. hickory's parser does not report lines, so we cut the text
//! here and hand hickory one entry at a time; every error can then name its
//! line.

/// One word of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// As written, with any backslash escapes kept; without the quotes.
    pub text: String,
    /// Written between double quotes.
    pub quoted: bool,
}

/// One record or directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The line (1-based) the entry starts on.
    pub line: usize,
    /// The entry starts with white space: the owner is the previous one's.
    pub owner_blank: bool,
    pub tokens: Vec<Token>,
}

/// A lexical error: an unclosed quote or parenthesis, a stray `)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub line: usize,
    pub message: String,
}

/// Cuts `text` into entries.
pub fn entries(text: &str) -> Result<Vec<Entry>, LexError> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut depth = 0usize;
    let mut paren_line = 0;
    let mut current: Option<Entry> = None;
    let mut word: Option<Token> = None;
    let mut at_line_start = true;
    let mut chars = text.chars().peekable();

    fn end_word(word: &mut Option<Token>, current: &mut Option<Entry>) {
        if let (Some(w), Some(entry)) = (word.take(), current.as_mut()) {
            entry.tokens.push(w);
        }
    }

    while let Some(c) = chars.next() {
        if at_line_start && depth == 0 {
            at_line_start = false;
            if let Some(entry) = current.take()
                && !entry.tokens.is_empty()
            {
                out.push(entry);
            }
            current = Some(Entry {
                line,
                owner_blank: c == ' ' || c == '\t',
                tokens: Vec::new(),
            });
        }
        match c {
            '\n' => {
                end_word(&mut word, &mut current);
                line += 1;
                at_line_start = true;
            }
            ' ' | '\t' | '\r' => end_word(&mut word, &mut current),
            ';' => {
                end_word(&mut word, &mut current);
                while chars.next_if(|&n| n != '\n').is_some() {}
            }
            '(' => {
                end_word(&mut word, &mut current);
                if depth == 0 {
                    paren_line = line;
                }
                depth += 1;
            }
            ')' => {
                end_word(&mut word, &mut current);
                if depth == 0 {
                    return Err(LexError {
                        line,
                        message: "`)` without an opening `(`".into(),
                    });
                }
                depth -= 1;
            }
            '"' => {
                end_word(&mut word, &mut current);
                let start = line;
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(LexError {
                                line: start,
                                message: "quoted string is not closed: expected a closing `\"`"
                                    .into(),
                            });
                        }
                        Some('"') => break,
                        Some('\\') => {
                            text.push('\\');
                            if let Some(n) = chars.next() {
                                if n == '\n' {
                                    line += 1;
                                }
                                text.push(n);
                            }
                        }
                        Some('\n') => {
                            line += 1;
                            text.push('\n');
                        }
                        Some(other) => text.push(other),
                    }
                }
                if let Some(entry) = current.as_mut() {
                    entry.tokens.push(Token { text, quoted: true });
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(|| Token {
                    text: String::new(),
                    quoted: false,
                });
                w.text.push('\\');
                if let Some(n) = chars.next_if(|&n| n != '\n') {
                    w.text.push(n);
                }
            }
            other => word
                .get_or_insert_with(|| Token {
                    text: String::new(),
                    quoted: false,
                })
                .text
                .push(other),
        }
    }
    end_word(&mut word, &mut current);
    if depth > 0 {
        return Err(LexError {
            line: paren_line,
            message: "`(` is never closed: expected a matching `)`".into(),
        });
    }
    if let Some(entry) = current
        && !entry.tokens.is_empty()
    {
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(e: &Entry) -> Vec<&str> {
        e.tokens.iter().map(|t| t.text.as_str()).collect()
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
