//! Small HTTP servers on 127.0.0.1 inside the process, for the demo (its data source and its
//! receiver) and the benchmarks: a handler from request to status and body, nothing more.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `handler` over HTTP/1 on `address` (port 0: any free port) until `stop`; returns
/// the address bound.
pub async fn serve<F>(
    handler: F,
    stop: CancellationToken,
    address: SocketAddr,
) -> std::io::Result<SocketAddr>
where
    F: Fn(http::Request<Bytes>) -> (u16, String) + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let handler = handler.clone();
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let handler = handler.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let (status, text) = handler(http::Request::from_parts(parts, bytes));
                    let mut response = http::Response::new(Full::new(Bytes::from(text)));
                    *response.status_mut() =
                        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

/// The parameters of a request as Prometheus' API reads them: from the URL (GET) and from a
/// form body (POST, as foretell's reader sends them); a name in both takes the body's value.
pub fn parameters(request: &http::Request<Bytes>) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .chain(url::form_urlencoded::parse(request.body()))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}
