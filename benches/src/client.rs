//! One HTTP/1.1 keep-alive connection with its own cookie, as a browser tab would have.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, COOKIE, HOST, SET_COOKIE};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

impl Answer {
    /// `{"counter": n}` in the body.
    pub(crate) fn counter(&self) -> Option<i64> {
        let json: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        json["counter"].as_i64()
    }

    /// `{"source": "redis"}` in the body (our apps say where the session came from).
    pub(crate) fn source(&self) -> Option<String> {
        let json: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        json["source"].as_str().map(str::to_owned)
    }
}

pub(crate) struct Connection {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// `name=value` of the session cookie, whatever the system calls it.
    pub(crate) cookie: Option<String>,
}

impl Connection {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            sender: None,
            cookie: None,
        }
    }

    /// Sends one request, reconnecting if the server closed the connection.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&'static str>,
    ) -> Result<Answer, String> {
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(connect(self.addr).await?),
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "127.0.0.1");
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie.as_str());
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from_static(body.unwrap_or("").as_bytes())))
            .map_err(|e| e.to_string())?;
        sender.ready().await.map_err(|e| e.to_string())?;
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(err) => {
                self.sender = None;
                return Err(err.to_string());
            }
        };
        let status = response.status().as_u16();
        for header in response.headers().get_all(SET_COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            let pair = header.split(';').next().unwrap_or("").trim();
            // A removal has an empty value or `Max-Age=0` (values may end in base64 padding).
            let empty = pair
                .split_once('=')
                .is_none_or(|(_, value)| value.is_empty());
            let removed = empty
                || header
                    .split(';')
                    .any(|attribute| attribute.trim().eq_ignore_ascii_case("max-age=0"));
            self.cookie = (!removed).then(|| pair.to_owned());
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer { status, body })
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}
