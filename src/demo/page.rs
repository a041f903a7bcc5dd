//! The demo issuer's HTML: the managed-login look-alike sign-in form and the page that
//! names a refused request. Every value that came from a request is HTML-escaped here,
//! and every page is sent with a strict Content-Security-Policy (no script at all).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// What the sign-in page must not allow: scripts, framing, other origins' resources.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
                   frame-ancestors 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:26em;margin:3em auto;\
padding:0 1em}label{display:block;margin:.7em 0}input{display:block;width:100%;\
padding:.4em;box-sizing:border-box}button{margin:.8em .5em 0 0;padding:.4em 1em}\
#error{color:#b00}code{word-break:break-all}";

/// `s` with `& < > " '` replaced by character references (safe in text and in quoted
/// attribute values).
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n",
        title = escape(title),
    )
}

/// The sign-in form. `hidden` are the authorize request's parameters, carried back in
/// the POST; `username` refills the field after a failed attempt.
pub(super) fn sign_in_form(
    client_id: &str,
    hidden: &[(&str, &str)],
    username: &str,
    error: Option<&str>,
) -> String {
    let mut fields = String::new();
    for (name, value) in hidden {
        fields.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            escape(name),
            escape(value)
        ));
    }
    let error = error.map_or_else(String::new, |e| {
        format!("<p id=\"error\" role=\"alert\">{}</p>\n", escape(e))
    });
    document(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>\n<p>to <code>{client}</code> on the cognito-sidecar demo \
             issuer (a development stand-in for Cognito's managed login).</p>\n{error}\
             <form id=\"sign-in-form\" method=\"post\" action=\"/oauth2/authorize\">\n{fields}\
             <label>Username <input id=\"username\" name=\"username\" value=\"{username}\" \
             autocomplete=\"username\" autocapitalize=\"none\" autofocus required></label>\n\
             <label>Password <input id=\"password\" name=\"password\" type=\"password\" \
             autocomplete=\"current-password\" required></label>\n\
             <button id=\"sign-in\" type=\"submit\" name=\"action\" value=\"sign-in\">Sign in\
             </button>\n\
             <button id=\"cancel\" type=\"submit\" name=\"action\" value=\"cancel\" \
             formnovalidate>Cancel</button>\n</form>",
            client = escape(client_id),
            username = escape(username),
        ),
    )
}

/// The page for a request the issuer refuses without redirecting (the redirect URI
/// cannot be trusted, or there is nowhere to go back to).
pub(super) fn problem(title: &str, detail: &str) -> String {
    document(
        title,
        &format!(
            "<h1>{}</h1>\n<p id=\"error\">{}</p>",
            escape(title),
            escape(detail)
        ),
    )
}

/// An HTML answer that is never cached nor framed.
pub(super) fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_markup_character_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn the_form_escapes_hidden_values_the_username_and_the_error() {
        let page = sign_in_form(
            "c<1>",
            &[("state", "\"><script>alert(1)</script>")],
            "<b>",
            Some("<i>bad</i>"),
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<b>") && !page.contains("<i>"), "{page}");
        assert!(page.contains("value=\"&quot;&gt;&lt;script&gt;"), "{page}");
        assert!(page.contains("id=\"error\""));
        assert!(!sign_in_form("c", &[], "", None).contains("id=\"error\""));
    }
}
