//! The mail [`Transport`] on wasi:http: one blocking request with connect and first-byte
//! timeouts, through the host's outbound HTTP (so `allowed_outbound_hosts` applies, and
//! `*.spin.internal` reaches another component of the app).

use std::time::Duration;

use caseport_shared::mail::{InResponse, OutRequest, Transport, TransportError};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

/// The largest provider answer read; anything longer is cut (answers are small JSON).
const MAX_ANSWER: usize = 64 * 1024;

/// Sends with wasi:http and sleeps on the monotonic clock.
pub struct WasiTransport;

fn unreachable(why: &str) -> TransportError {
    TransportError::Unreachable(why.to_string())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Transport for WasiTransport {
    fn send(&self, request: &OutRequest, timeout: Duration) -> Result<InResponse, TransportError> {
        let (scheme, rest) = request
            .url
            .split_once("://")
            .ok_or_else(|| unreachable("the address has no scheme"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let entries: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
            .chain([(
                "content-length".to_string(),
                request.body.len().to_string().into_bytes(),
            )])
            .collect();
        let headers =
            Fields::from_list(&entries).map_err(|_| unreachable("a header was refused"))?;
        let outgoing = OutgoingRequest::new(headers);
        let scheme = match scheme {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => Scheme::Other(other.to_string()),
        };
        let set = [
            outgoing.set_method(&Method::Post),
            outgoing.set_scheme(Some(&scheme)),
            outgoing.set_authority(Some(authority)),
            outgoing.set_path_with_query(Some(path)),
        ];
        if set.iter().any(Result::is_err) {
            return Err(unreachable("the address is not valid"));
        }
        let options = RequestOptions::new();
        // Connecting gets a bounded share; the answer gets the whole timeout.
        let _ = options.set_connect_timeout(Some(nanos(timeout.min(Duration::from_secs(5)))));
        let _ = options.set_first_byte_timeout(Some(nanos(timeout)));
        let _ = options.set_between_bytes_timeout(Some(nanos(timeout)));
        let body = outgoing
            .body()
            .map_err(|_| unreachable("the request body is unavailable"))?;
        let future = outgoing_handler::handle(outgoing, Some(options)).map_err(|e| error(&e))?;
        {
            let stream = body
                .write()
                .map_err(|_| unreachable("the request body is unavailable"))?;
            for chunk in request.body.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|_| unreachable("the connection closed while sending"))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|e| error(&e))?;
        future.subscribe().block();
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(e))) => return Err(error(&e)),
            _ => return Err(unreachable("no answer")),
        };
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(&name.to_string())
                .first()
                .and_then(|v| String::from_utf8(v.clone()).ok())
        };
        let retry_after = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
        let message_id_header = header("x-message-id");
        let incoming = response
            .consume()
            .map_err(|_| unreachable("the answer has no body"))?;
        let body = read_all(&incoming)?;
        drop(incoming);
        Ok(InResponse {
            status,
            retry_after,
            message_id_header,
            body,
        })
    }

    fn sleep(&self, duration: Duration) {
        wasi::clocks::monotonic_clock::subscribe_duration(nanos(duration)).block();
    }
}

fn read_all(incoming: &IncomingBody) -> Result<Vec<u8>, TransportError> {
    let stream = incoming
        .stream()
        .map_err(|_| unreachable("the answer has no body"))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(16 * 1024) {
            Ok(bytes) => {
                out.extend_from_slice(&bytes);
                if out.len() > MAX_ANSWER {
                    out.truncate(MAX_ANSWER);
                    break;
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(_)) => {
                return Err(TransportError::Timeout);
            }
        }
    }
    Ok(out)
}

/// A wasi:http error as the mail rules see it: a timeout after the request went out may
/// have delivered it; everything else did not reach the provider.
fn error(e: &ErrorCode) -> TransportError {
    match e {
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            TransportError::Timeout
        }
        ErrorCode::ConnectionRefused => unreachable("connection refused"),
        ErrorCode::ConnectionTimeout => unreachable("no connection within the timeout"),
        ErrorCode::DnsError(_) | ErrorCode::DnsTimeout => unreachable("unknown host name"),
        ErrorCode::HttpRequestDenied => {
            unreachable("the host is not in the component's allowed_outbound_hosts")
        }
        ErrorCode::TlsCertificateError
        | ErrorCode::TlsProtocolError
        | ErrorCode::TlsAlertReceived(_) => unreachable("the secure connection failed"),
        other => TransportError::Unreachable(format!("{other:?}")),
    }
}
