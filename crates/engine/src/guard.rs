//! The destination policy at delivery time: every address a host name
//! resolves to (so a name that resolves to a refused address when the
//! message is delivered, DNS rebinding, fails the attempt), every literal
//! address, and every redirect hop.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use qstash_core::policy::DestinationPolicy;
use tower_http::follow_redirect::policy::{Action, Attempt, Policy};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a delivery's exchange ended without an answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Client(#[from] hyper_util::client::legacy::Error),
    /// A redirect the policy does not follow.
    #[error("{0}")]
    Redirect(String),
}

tokio::task_local! {
    /// The port of the hop being connected. A resolver sees only a host
    /// name, but the own-address rule needs the port; the delivery task
    /// sets it per attempt, and the redirect policy per hop (both run in
    /// that task, as does the first poll of the connection, which is where
    /// the resolver is called).
    static HOP_PORT: Cell<Option<u16>>;
}

/// Runs `f` (a request's send) with `port` as its first hop's port.
pub async fn with_port<F: std::future::Future>(port: Option<u16>, f: F) -> F::Output {
    HOP_PORT.scope(Cell::new(port), f).await
}

fn hop_port() -> Option<u16> {
    HOP_PORT.try_with(Cell::get).ok().flatten()
}

/// Resolves with the system resolver, then keeps only the addresses the
/// policy allows; none left fails the connection with the rule's reason.
#[derive(Clone)]
pub struct PolicyResolver {
    pub policy: Arc<DestinationPolicy>,
}

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, BoxError>> + Send>>;

impl tower::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let port = hop_port();
        let host = name.as_str().to_string();
        Box::pin(async move {
            policy.check_name(&host)?;
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check_ip(&host, a.ip(), port) {
                    Ok(()) => true,
                    Err(e) => {
                        refusal = Some(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refusal) {
                (true, Some(e)) => Err(e.into()),
                _ => Ok(allowed.into_iter()),
            }
        })
    }
}

/// The redirect policy of one delivery: follows up to 10 redirects, each
/// hop checked like a destination, and drops credentials when a hop
/// leaves the first request's scheme, host and port (as browsers and
/// reqwest do).
#[derive(Clone)]
pub struct Hops {
    policy: Arc<DestinationPolicy>,
    followed: u8,
    origin: Option<(Option<http::uri::Scheme>, Option<http::uri::Authority>)>,
}

impl Hops {
    pub fn new(policy: Arc<DestinationPolicy>) -> Self {
        Hops {
            policy,
            followed: 0,
            origin: None,
        }
    }
}

const SENSITIVE: [http::HeaderName; 4] = [
    http::header::AUTHORIZATION,
    http::header::COOKIE,
    http::header::PROXY_AUTHORIZATION,
    http::header::WWW_AUTHENTICATE,
];

impl<B: Clone> Policy<B, SendError> for Hops {
    fn redirect(&mut self, attempt: &Attempt<'_>) -> Result<Action, SendError> {
        if self.followed >= 10 {
            return Err(SendError::Redirect("too many redirects".into()));
        }
        // Checked as the URL parser normalises it; a host the connector
        // reads differently (`0x7f000001`) is a name to it, and the
        // resolver checks what it resolves to.
        let refused =
            |e: &dyn std::fmt::Display| SendError::Redirect(format!("redirect refused: {e}"));
        let location = url::Url::parse(&attempt.location().to_string()).map_err(|e| refused(&e))?;
        self.policy
            .check_parsed(&location)
            .map_err(|e| refused(&e))?;
        let _ = HOP_PORT.try_with(|p| p.set(location.port_or_known_default()));
        self.followed += 1;
        Ok(Action::Follow)
    }

    fn on_request(&mut self, request: &mut http::Request<B>) {
        let here = (
            request.uri().scheme().cloned(),
            request.uri().authority().cloned(),
        );
        match &self.origin {
            None => self.origin = Some(here),
            Some(origin) if *origin != here => {
                let headers = request.headers_mut();
                for name in &SENSITIVE {
                    headers.remove(name);
                }
            }
            Some(_) => {}
        }
    }

    fn clone_body(&self, body: &B) -> Option<B> {
        Some(body.clone())
    }
}
