//! The destination policy at delivery time: every address a host name
//! resolves to (so a name that resolves to a refused address when the
//! message is delivered, DNS rebinding, fails the attempt), every literal
//! address, and every redirect hop.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;

use qstash_core::policy::DestinationPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

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
pub struct PolicyResolver {
    pub policy: Arc<DestinationPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
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
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// Follows up to 10 redirects, each checked like a destination.
pub fn redirect_policy(policy: Arc<DestinationPolicy>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("too many redirects");
        }
        let url = attempt.url().clone();
        if let Err(e) = policy.check_url(url.as_str()) {
            return attempt.error(format!("redirect refused: {e}"));
        }
        let _ = HOP_PORT.try_with(|p| p.set(url.port_or_known_default()));
        attempt.follow()
    })
}
