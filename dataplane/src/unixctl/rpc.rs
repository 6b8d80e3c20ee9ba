//! The JSON-RPC 1.0 framing of OVS's unixctl sockets (OVS `lib/jsonrpc.c`): messages are JSON
//! objects sent back to back on a stream, with no length prefix or delimiter (whitespace
//! between them is allowed). A request is `{"method":M,"params":[strings],"id":ID}`; the reply
//! carries the same id, either `{"id":ID,"result":"text","error":null}` or
//! `{"id":ID,"error":"text"}`. `ovs-appctl` prints the result on stdout, or the error on stderr
//! and exits with status 2.

use serde_json::Value;

/// Largest request accepted; a peer that sends more without finishing one is disconnected.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request as the server acts on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Value,
    pub method: String,
    /// The arguments, or why they are unusable (a non-string argument): the request is then
    /// answered with that error, as OVS does.
    pub params: Result<Vec<String>, String>,
}

/// Why a connection is closed without a reply (as OVS closes it: there is no id to answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Not JSON, or JSON that is not a JSON-RPC request.
    Malformed(String),
    /// More than [`MAX_REQUEST`] bytes without a complete message.
    TooLarge,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Malformed(m) => write!(f, "malformed request: {m}"),
            FrameError::TooLarge => write!(
                f,
                "a request of more than {MAX_REQUEST} bytes did not end; closing"
            ),
        }
    }
}

/// Splits a byte stream into requests.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Appends bytes received.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether bytes of an unfinished message are waiting.
    pub fn pending(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }

    /// The next complete request, `Ok(None)` when more bytes are needed.
    pub fn next_request(&mut self) -> Result<Option<Request>, FrameError> {
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
        match it.next() {
            None => {
                self.buf.clear();
                Ok(None)
            }
            Some(Ok(v)) => {
                let used = it.byte_offset();
                self.buf.drain(..used);
                parse_request(v).map(Some)
            }
            Some(Err(e)) if e.is_eof() => {
                if self.buf.len() > MAX_REQUEST {
                    Err(FrameError::TooLarge)
                } else {
                    Ok(None)
                }
            }
            Some(Err(e)) => Err(FrameError::Malformed(e.to_string())),
        }
    }
}

/// Checks a message the way OVS's `jsonrpc_msg_from_json` does, for a request: an object with
/// a string `method`, an array `params` and a non-null `id`, and no other member.
fn parse_request(v: Value) -> Result<Request, FrameError> {
    let bad = |m: &str| Err(FrameError::Malformed(m.to_string()));
    let Value::Object(mut o) = v else {
        return bad("message is not a JSON object");
    };
    let method = match o.remove("method") {
        Some(Value::String(s)) => s,
        Some(_) => return bad("method is not a JSON string"),
        None => return bad("not a request (no method)"),
    };
    let params = o.remove("params");
    let id = o.remove("id").unwrap_or(Value::Null);
    if let Some((k, _)) = o.iter().next() {
        return Err(FrameError::Malformed(format!(
            "message has unexpected member \"{k}\""
        )));
    }
    if id.is_null() {
        return bad("a request needs an id (notifications are not served)");
    }
    let Some(Value::Array(params)) = params else {
        return bad("\"params\" must be an array");
    };
    let params = params
        .into_iter()
        .map(|p| match p {
            Value::String(s) => Ok(s),
            _ => Err(format!("\"{method}\" command has non-string argument")),
        })
        .collect();
    Ok(Request { id, method, params })
}

/// JSON text of a value (ids and strings cannot fail to serialise).
fn json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The bytes of a successful reply, members in OVS's order.
pub fn reply_ok(id: &Value, text: &str) -> Vec<u8> {
    format!(
        "{{\"id\":{},\"result\":{},\"error\":null}}",
        json(id),
        json(&Value::String(text.into()))
    )
    .into_bytes()
}

/// The bytes of an error reply; the text ends with a newline, as OVS's do.
pub fn reply_error(id: &Value, text: &str) -> Vec<u8> {
    let mut text = text.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    format!(
        "{{\"id\":{},\"error\":{}}}",
        json(id),
        json(&Value::String(text))
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian's ovs-appctl 3.1 sends for `ovs-appctl ofproto/trace br0 in_port=3,ip`.
    const APPCTL_TRACE: &[u8] =
        br#"{"id":0,"method":"ofproto/trace","params":["br0","in_port=3,ip"]}"#;

    #[test]
    fn a_request_from_ovs_appctl_decodes() {
        let mut d = Decoder::default();
        d.push(APPCTL_TRACE);
        let r = d.next_request().unwrap().unwrap();
        assert_eq!(r.id, Value::from(0));
        assert_eq!(r.method, "ofproto/trace");
        assert_eq!(r.params, Ok(vec!["br0".into(), "in_port=3,ip".into()]));
        assert!(!d.pending());
        assert_eq!(d.next_request(), Ok(None));
    }

    #[test]
    fn requests_split_anywhere_or_back_to_back_decode() {
        let two = [
            APPCTL_TRACE,
            b" \n",
            br#"{"method":"version","params":[],"id":"x"}"#,
        ]
        .concat();
        for cut in 0..two.len() {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for part in [&two[..cut], &two[cut..]] {
                d.push(part);
                while let Some(r) = d.next_request().unwrap() {
                    got.push(r.method);
                }
            }
            assert_eq!(got, ["ofproto/trace", "version"], "cut at {cut}");
        }
    }

    #[test]
    fn garbage_and_non_requests_are_refused() {
        for bad in [
            &b"garbage{{"[..],
            b"[1,2]",
            br#"{"method":1,"params":[],"id":1}"#,
            br#"{"method":"version","params":[]}"#,
            br#"{"method":"version","params":[],"id":null}"#,
            br#"{"method":"version","params":"x","id":1}"#,
            br#"{"method":"version","params":[],"id":1,"extra":2}"#,
            br#"{"result":"x","error":null,"id":1}"#,
        ] {
            let mut d = Decoder::default();
            d.push(bad);
            assert!(
                matches!(d.next_request(), Err(FrameError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_non_string_argument_is_answered_with_an_error() {
        let mut d = Decoder::default();
        d.push(br#"{"method":"version","params":[1],"id":1}"#);
        let r = d.next_request().unwrap().unwrap();
        assert_eq!(
            r.params,
            Err("\"version\" command has non-string argument".into())
        );
    }

    #[test]
    fn an_endless_request_is_cut_off() {
        let mut d = Decoder::default();
        d.push(br#"{"method":"version","params":["#);
        assert_eq!(d.next_request(), Ok(None));
        d.push(&vec![b' '; MAX_REQUEST]);
        assert_eq!(d.next_request(), Err(FrameError::TooLarge));
    }

    #[test]
    fn replies_are_shaped_as_ovs_sends_them() {
        assert_eq!(
            String::from_utf8(reply_ok(&Value::from(0), "br0\n")).unwrap(),
            r#"{"id":0,"result":"br0\n","error":null}"#
        );
        assert_eq!(
            String::from_utf8(reply_error(&Value::from("x"), "br1: unknown bridge")).unwrap(),
            r#"{"id":"x","error":"br1: unknown bridge\n"}"#
        );
    }

    proptest::proptest! {
        /// Whatever a peer sends, in whatever pieces, decoding ends in requests, a wait for
        /// more, or an error: never a panic.
        #[test]
        fn any_bytes_decode_without_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            cut in 0usize..512,
        ) {
            let cut = cut.min(bytes.len());
            let mut d = Decoder::default();
            for part in [&bytes[..cut], &bytes[cut..]] {
                d.push(part);
                while let Ok(Some(_)) = d.next_request() {}
            }
        }
    }
}
