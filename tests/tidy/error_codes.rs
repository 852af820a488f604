//! Every error code the server can send is documented in docs/PROTOCOL.md.

use super::*;

/// The string literal that starts `text` (after blanks), if it is a snake_case code.
fn code_literal(text: &str) -> Option<&str> {
    let text = text.trim_start().strip_prefix('"')?;
    let code = &text[..text.find('"')?];
    let snake = !code.is_empty() && code.bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_');
    snake.then_some(code)
}

/// The second argument of every call `name(first, "code", ...)` in `text`.
fn second_arguments<'a>(text: &'a str, name: &str, codes: &mut BTreeSet<&'a str>) {
    for (at, _) in text.match_indices(name) {
        let arguments = &text[at + name.len()..];
        // Skip the first argument: up to the first comma outside parentheses.
        let mut depth = 0;
        let comma = arguments.char_indices().find(|(_, c)| {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => return true,
                _ => {}
            }
            false
        });
        if let Some(code) = comma.and_then(|(comma, _)| code_literal(&arguments[comma + 1..])) {
            codes.insert(code);
        }
    }
}

/// Error codes written in the gateway and the deciders' rejections.
fn emitted_codes(text: &str, codes: &mut BTreeSet<String>) {
    let mut found = BTreeSet::new();
    second_arguments(text, "ApiError::new(", &mut found);
    second_arguments(text, "error_frame(", &mut found);
    for call in ["ApiError::bad_request(", "ApiError::not_found(", "code: "] {
        for (at, _) in text.match_indices(call) {
            found.extend(code_literal(&text[at + call.len()..]));
        }
    }
    // `fn code(&self) -> &'static str { match self { ... => "code", ... } }`
    for (at, _) in text.match_indices("fn code(&self) -> &'static str") {
        let body = &text[at..];
        let body = &body[..body.find("\n    }\n").unwrap_or(body.len())];
        for (arrow, _) in body.match_indices("=> ") {
            found.extend(code_literal(&body[arrow + 3..]));
        }
    }
    codes.extend(found.into_iter().map(str::to_string));
}

/// Whether `protocol` names `code` in backticks, alone or after its HTTP
/// status (`` `not_found` `` or `` `404 not_found` ``).
fn documented(protocol: &str, code: &str) -> bool {
    protocol.match_indices(&format!("{code}`")).any(|(at, _)| {
        let before = &protocol.as_bytes()[..at];
        before.ends_with(b"`")
            || (before.len() >= 5
                && before[before.len() - 5] == b'`'
                && before[before.len() - 4..before.len() - 1].iter().all(u8::is_ascii_digit)
                && before[before.len() - 1] == b' ')
    })
}

#[test]
fn every_error_code_the_server_sends_is_documented() {
    let root = root();
    let mut files = Vec::new();
    for dir in ["gateway/src", "processors/core/src", "processors/src", "src"] {
        sources(&root.join(dir), &mut files);
    }
    let mut codes = BTreeSet::new();
    for file in &files {
        emitted_codes(&read(file), &mut codes);
    }
    // The extraction must keep finding the codes it was written against.
    for known in ["bad_frame", "not_member", "rate_limited", "wrong_gateway", "too_many_devices", "bad_kind"] {
        assert!(codes.contains(known), "the tidy check no longer finds the error code {known}: fix its patterns");
    }
    let protocol = read(&root.join("docs/PROTOCOL.md"));
    let undocumented: Vec<&String> = codes.iter().filter(|code| !documented(&protocol, code)).collect();
    assert!(
        undocumented.is_empty(),
        "these error codes reach clients but docs/PROTOCOL.md does not name them (as `code`): {undocumented:?}"
    );
}
