//! The INI dialect of Python's `configparser` with its defaults, which wrote and read
//! these files before dbsync: a line whose first non-blank character is `#` or `;` is a
//! comment wherever it stands, even between the lines of a multi-line value; a line
//! indented deeper than its key continues the key's value (blank lines inside a value are
//! kept); nothing is stripped from inside a line, so `#` and `;` after a value belong to
//! it (dbsync strips inline comments afterwards, key by key: see `super`).
//!
//! Where `configparser` refuses a file (a duplicate section or key, a line before the first
//! section, a line that is none of the above), this refuses it too, with the line number.
//! Two leniencies, for files `configparser` would have misread rather than refused: a
//! section header may be followed by a comment (`[local_db]   ; the fallback`), and its name
//! is trimmed.

use std::collections::HashMap;

/// Sections by name (as written), each key (lower-cased) to its value.
pub type Sections = HashMap<String, HashMap<String, String>>;

/// `configparser`'s name for the section whose keys every other section inherits.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// Parses `text`. Errors name the line but never quote it: it may hold a password.
pub fn parse(text: &str) -> Result<Sections, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sections: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
    // The section being read, and the key whose value an indented line would continue.
    let mut section: Option<String> = None;
    let mut key: Option<String> = None;
    let mut key_indent = 0;
    for (i, line) in lines(text).enumerate() {
        let n = i + 1;
        let content = line.trim();
        let comment = content.starts_with('#') || content.starts_with(';');
        if content.is_empty() || comment {
            // A blank line may be part of a value; a comment line never is, and neither
            // ends the value: the next indented line still continues it.
            if let (Some(s), Some(k), false) = (&section, &key, comment) {
                value_of(&mut sections, s, k).push(String::new());
            }
            continue;
        }
        let indent = line.chars().take_while(|c| c.is_whitespace()).count();
        if let (Some(s), Some(k)) = (&section, &key) {
            if indent > key_indent {
                value_of(&mut sections, s, k).push(content.to_string());
                continue;
            }
        }
        key_indent = indent;
        if content.starts_with('[') {
            let name = section_name(content).map_err(|why| format!("line {n}: {why}"))?;
            if sections.contains_key(&name) {
                return Err(format!("line {n}: section [{name}] appears a second time"));
            }
            sections.insert(name.clone(), HashMap::new());
            section = Some(name);
            key = None;
            continue;
        }
        let Some(s) = &section else {
            return Err(format!("line {n} comes before the first [section] header"));
        };
        let (k, v) = option(content).ok_or_else(|| {
            format!("line {n} is neither a [section] header, `key = value`, nor a comment")
        })?;
        let keys = sections.get_mut(s).expect("inserted at its header");
        if keys.contains_key(&k) {
            return Err(format!(
                "line {n}: key `{k}` appears a second time in section [{s}]"
            ));
        }
        keys.insert(k.clone(), vec![v.to_string()]);
        key = Some(k);
    }
    Ok(sections
        .into_iter()
        .map(|(name, keys)| {
            let keys = keys
                .into_iter()
                .map(|(k, lines)| (k, lines.join("\n").trim_end().to_string()))
                .collect();
            (name, keys)
        })
        .collect())
}

/// Lines as Python's universal newlines split them (`\\n`, `\\r\\n` or a lone `\\r`).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let t = rest?;
        match t.find(['\r', '\n']) {
            None => {
                rest = None;
                (!t.is_empty()).then_some(t)
            }
            Some(i) => {
                let skip = if t[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&t[i + skip..]);
                Some(&t[..i])
            }
        }
    })
}

fn value_of<'a>(
    sections: &'a mut HashMap<String, HashMap<String, Vec<String>>>,
    section: &str,
    key: &str,
) -> &'a mut Vec<String> {
    sections
        .get_mut(section)
        .and_then(|keys| keys.get_mut(key))
        .expect("the key being continued was inserted")
}

/// `[name]`, optionally followed by a comment.
fn section_name(content: &str) -> Result<String, &'static str> {
    let inner = &content[1..];
    let end = inner
        .find(']')
        .ok_or("a section header must end with `]`")?;
    let name = inner[..end].trim();
    let after = inner[end + 1..].trim_start();
    if name.is_empty() {
        return Err("a section header needs a name");
    }
    if !(after.is_empty() || after.starts_with(';') || after.starts_with('#')) {
        return Err("only a comment may follow a section header");
    }
    Ok(name.to_string())
}

/// `key = value` or `key : value`, split at the first `=` or `:`; the key lower-cased.
fn option(content: &str) -> Option<(String, &str)> {
    let at = content.find(['=', ':'])?;
    let key = content[..at].trim_end();
    if key.is_empty() {
        return None;
    }
    Some((key.to_lowercase(), content[at + 1..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, section: &str, key: &str) -> String {
        parse(text).unwrap()[section][key].clone()
    }

    // Each expected value below is what Python 3.11's configparser.ConfigParser() returns
    // (read_string, then get with raw=True) for the same text.

    #[test]
    fn comment_line_inside_a_value_is_dropped_and_the_value_goes_on() {
        let text = "[a]\nquery = SELECT *\n    FROM t\n    # only active rows\n    WHERE a = 1\n  ; semi\n\n    AND b\n\n\nx = 1\n";
        assert_eq!(
            value(text, "a", "query"),
            "SELECT *\nFROM t\nWHERE a = 1\n\nAND b"
        );
        assert_eq!(value(text, "a", "x"), "1");
        // Even a comment in the first column does not end the value.
        let text = "[a]\nq = a\n\n  \n\tb\n#top\n  c\n";
        assert_eq!(value(text, "a", "q"), "a\n\n\nb\nc");
        let text = "[a]\nq = SELECT\n\n   # c\n\n   FROM t\n\n\n";
        assert_eq!(value(text, "a", "q"), "SELECT\n\n\nFROM t");
    }

    #[test]
    fn nothing_is_stripped_inside_a_line() {
        let text =
            "[a]\nx = 1 ; c\ny = v # c\nz = lot #4\nq = a\n\t# tab comment\n\tb ; not # comment\n";
        assert_eq!(value(text, "a", "x"), "1 ; c");
        assert_eq!(value(text, "a", "y"), "v # c");
        assert_eq!(value(text, "a", "z"), "lot #4");
        assert_eq!(value(text, "a", "q"), "a\nb ; not # comment");
    }

    #[test]
    fn delimiters_indentation_and_empty_values() {
        let text = "[a]\nK : b = c\nx=1:2\n  i = 1\n  j = 2\n k = 3\n    cont\nw=\n    next\ne =\n";
        assert_eq!(value(text, "a", "k"), "b = c");
        assert_eq!(value(text, "a", "x"), "1:2\ni = 1\nj = 2\nk = 3\ncont");
        assert_eq!(value(text, "a", "w"), "\nnext");
        assert_eq!(value(text, "a", "e"), "");
        // Keys indented alike are separate keys; deeper lines continue the last one.
        let text = "[a]\n  x = 1\n  y = 2\n z = 3\n    cont\n";
        assert_eq!(value(text, "a", "x"), "1");
        assert_eq!(value(text, "a", "y"), "2");
        assert_eq!(value(text, "a", "z"), "3\ncont");
        // A section header indented under a value is part of the value.
        assert_eq!(value("[a]\nk:v\n [b]\n", "a", "k"), "v\n[b]");
        assert_eq!(value("[a]\r\nq = a\r\n   b\r\n", "a", "q"), "a\nb");
        assert_eq!(value("\u{feff}[a]\rq = a\r b", "a", "q"), "a\nb");
    }

    #[test]
    fn headers_may_carry_a_comment() {
        let s = parse("[external_db]     ; the primary source\nhost = h\n[ b ]\nx=1\n").unwrap();
        assert_eq!(s["external_db"]["host"], "h");
        assert_eq!(s["b"]["x"], "1");
    }

    #[test]
    fn refuses_what_configparser_refuses_naming_the_line_not_its_text() {
        let cases = [
            (
                "[a]\nx = 1\n[a]\ny=2\n",
                "line 3: section [a] appears a second time",
            ),
            (
                "[a]\nx = 1\nX = 2\n",
                "line 3: key `x` appears a second time",
            ),
            ("x = 1\n[a]\n", "line 1 comes before the first [section]"),
            ("[a]\npassword hunter2\n", "line 2 is neither"),
            ("[a]\n= hunter2\n", "line 2 is neither"),
            ("[a]\n\n   hunter2\n", "line 3 is neither"),
            ("[a\nx=1\n", "line 1: a section header must end with `]`"),
            ("[a] x=1\n", "line 1: only a comment may follow"),
        ];
        for (text, expected) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(expected), "{text:?}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
