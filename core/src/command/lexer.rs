//! Splits a chat line into words and `name:value` options.
//!
//! Values with spaces go in double quotes; inside them `\"` and `\\` escape. Typographic quotes
//! (“…”) count as quotes because phones and chat clients substitute them, so they end a quoted
//! value too and escape the same way (`\“`, `\”`). [`quote`] is the inverse of [`lex`]'s quoting:
//! it lives here so the characters it escapes cannot drift from the ones that end a value.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Word(String),
    Option { name: String, value: String },
}

pub fn lex(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if is_quote(first) {
            // A quoted word (e.g. `/help "incident declare"`).
            chars.next();
            tokens.push(Token::Word(quoted(&mut chars)?));
            continue;
        }
        let mut name = String::new();
        let mut value: Option<String> = None;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match (&mut value, c) {
                (None, ':') => {
                    value = Some(match chars.peek() {
                        Some(&q) if is_quote(q) => {
                            chars.next();
                            let v = quoted(&mut chars)?;
                            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                                return Err(format!(
                                    "option `{name}`: put a space after the closing quote"
                                ));
                            }
                            v
                        }
                        _ => String::new(),
                    });
                }
                (None, c) => name.push(c),
                (Some(v), c) => v.push(c),
            }
        }
        tokens.push(match value {
            Some(value) => Token::Option { name, value },
            None => Token::Word(name),
        });
    }
    Ok(tokens)
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '“' | '”')
}

/// A value quoted for the grammar, for adapters that build a command line from structured input
/// (slash-command options, JSON): `"…"`, with `\` and every quote character [`lex`] ends a value
/// at escaped, so any string comes back from [`lex`] exactly as given.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '\\' || is_quote(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\' | '“' | '”')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            },
            c if is_quote(c) => return Ok(out),
            c => out.push(c),
        }
    }
    Err("unterminated quote: close the value with \"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(n: &str, v: &str) -> Token {
        Token::Option {
            name: n.into(),
            value: v.into(),
        }
    }

    #[test]
    fn words_options_and_quoted_values() {
        let t =
            lex(r#"/incident declare level:3 title:"Database down" component:database"#).unwrap();
        assert_eq!(
            t,
            vec![
                Token::Word("/incident".into()),
                Token::Word("declare".into()),
                opt("level", "3"),
                opt("title", "Database down"),
                opt("component", "database"),
            ]
        );
    }

    #[test]
    fn escapes_smart_quotes_and_colons_in_values() {
        let t = lex(r#"x text:"say \"hi\" \\ now" url:http://a:8000/x t:“curly quotes”"#).unwrap();
        assert_eq!(t[1], opt("text", r#"say "hi" \ now"#));
        assert_eq!(t[2], opt("url", "http://a:8000/x"));
        assert_eq!(t[3], opt("t", "curly quotes"));
    }

    #[test]
    fn an_unterminated_quote_is_an_error() {
        assert!(lex(r#"/incident update text:"oops"#)
            .unwrap_err()
            .contains("unterminated quote"));
        assert!(lex(r#"a t:"x"y"#).is_err());
    }

    #[test]
    fn quote_escapes_typographic_quotes_so_they_do_not_end_the_value() {
        let v = r#"swap “disk” say "done" \ ”"#;
        assert_eq!(quote(v), r#""swap \“disk\” say \"done\" \\ \”""#);
        assert_eq!(
            lex(&format!("x reason:{}", quote(v))).unwrap()[1],
            opt("reason", v)
        );
    }

    #[test]
    fn empty_values_and_blank_lines() {
        assert_eq!(lex("  ").unwrap(), vec![]);
        assert_eq!(lex("a title:").unwrap()[1], opt("title", ""));
    }
}
