//! A server's error in its own words: the mysql crate prints a server's error as
//! `MySqlError { ERROR 1064 (42000): You have an error … }`, the look of a Rust Debug dump;
//! users read `ERROR 1064 (42000): You have an error …`.

const WRAPPER: &str = "MySqlError { ";

/// `text` with every `MySqlError { … }` replaced by what it wraps (braces inside the
/// server's message are kept: the wrapper ends at the brace that closes it).
pub fn plain_server_errors(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(WRAPPER) {
        out.push_str(&rest[..at]);
        let inner = &rest[at + WRAPPER.len()..];
        let mut depth = 0usize;
        let close = inner.char_indices().find_map(|(i, c)| match c {
            '{' => {
                depth += 1;
                None
            }
            '}' if depth == 0 => Some(i),
            '}' => {
                depth -= 1;
                None
            }
            _ => None,
        });
        match close {
            Some(i) => {
                out.push_str(inner[..i].trim_end());
                rest = &inner[i + 1..];
            }
            // Not closed (cut text): left as it is.
            None => {
                out.push_str(&rest[at..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_goes_and_the_words_stay() {
        assert_eq!(
            plain_server_errors(
                "the query failed: MySqlError { ERROR 1064 (42000): syntax near '{x}' at line 1 }"
            ),
            "the query failed: ERROR 1064 (42000): syntax near '{x}' at line 1"
        );
        assert_eq!(
            plain_server_errors(
                "a: MySqlError { ERROR 1 (x): one }; b: MySqlError { ERROR 2 (y): two }"
            ),
            "a: ERROR 1 (x): one; b: ERROR 2 (y): two"
        );
        assert_eq!(plain_server_errors("MySqlError { cut"), "MySqlError { cut");
        assert_eq!(plain_server_errors("IoError { lost }"), "IoError { lost }");
    }
}
