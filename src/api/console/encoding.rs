//! The console's URL encoding (query values, the `next` target after signing in), one place.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 3986's unreserved characters stay as they are; every other byte is `%XX`.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `text` as a query value.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn unreserved_characters_stay_and_the_rest_is_escaped() {
        assert_eq!(super::encode("a-Z_0.9~"), "a-Z_0.9~");
        assert_eq!(super::encode("/console/orders?q=1 2&x=é"), "%2Fconsole%2Forders%3Fq%3D1%202%26x%3D%C3%A9");
    }
}
