//! [`Stages`]: the gateway's layers, without the stages that are pass-throughs where that
//! is cheap to arrange.
//!
//! A pass-through stage decides nothing, yet as a layer it still takes the request, wraps
//! the inner future in its own and the response body in its own, and is cloned with the
//! gateway (axum clones a route's service for every request): each level moves the request,
//! the future and the response once more. So the gateway takes one of two shapes when it is
//! put around its service:
//!
//! - **lean**: authentication, authorization and validation alone, when nothing else is
//!   configured (no shield, no rate limit, no login);
//! - **whole**: every stage, the unconfigured ones as pass-throughs; when every stage
//!   before authentication is a pass-through (only the per-identity limits configured),
//!   requests enter at authentication, which the gateway calls itself (the layers before
//!   it keep no readiness of their own: `poll_ready` still goes through all of them).
//!
//! Either way the response has the same type: the gateway wraps the response body as the
//! stages left out would have.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{Core, CoreBody, GatewaySecurityLayer, InnerBody, Lean, LeanBody, OuterBody, Stack};

/// The gateway's layers, in one of its shapes.
#[derive(Clone)]
pub(super) enum Stages<S> {
    /// Every stage. `at_core`: every stage before authentication is a pass-through, and
    /// requests go straight to authentication.
    Whole { stack: Stack<S>, at_core: bool },
    /// Authentication, authorization and validation: nothing else is configured.
    Lean { stack: Lean<S> },
}

impl<S> Stages<S> {
    /// The gateway's layers around `inner`, in the cheapest shape that does the same.
    pub(super) fn new(layers: &GatewaySecurityLayer, inner: S) -> Self {
        let before = layers.nothing_before_authentication();
        #[cfg(feature = "rate-limit")]
        let lean = before && layers.limit.is_pass_through();
        #[cfg(not(feature = "rate-limit"))]
        let lean = before;
        #[cfg(feature = "validate")]
        let inner = layers.validate.layer(inner);
        if lean {
            return Self::Lean {
                stack: layers.authenticate.layer(layers.authorize.layer(inner)),
            };
        }
        #[cfg(feature = "rate-limit")]
        let inner = layers.limit.layer(inner);
        let stack = layers.authenticate.layer(layers.authorize.layer(inner));
        #[cfg(feature = "oidc")]
        let stack = layers.login.layer(stack);
        #[cfg(feature = "rate-limit")]
        let stack = layers.limit_before_auth.layer(stack);
        #[cfg(feature = "shield")]
        let stack = layers.shield.layer(stack);
        Self::Whole {
            stack,
            at_core: before,
        }
    }
}

/// The stages from authentication on, inside the pass-through ones.
fn core<S>(stack: &mut Stack<S>) -> &mut Core<S> {
    #[cfg(feature = "shield")]
    let stack = stack.get_mut();
    #[cfg(feature = "rate-limit")]
    let stack = stack.get_mut();
    #[cfg(feature = "oidc")]
    let stack = stack.get_mut();
    stack
}

impl<S: fmt::Debug> fmt::Debug for Stages<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Whole { stack, at_core } => f
                .debug_struct("Whole")
                .field("stack", stack)
                .field("at_core", at_core)
                .finish(),
            Self::Lean { stack } => f.debug_struct("Lean").field("stack", stack).finish(),
        }
    }
}

impl<S, B, ResBody> Service<Request<B>> for Stages<S>
where
    S: Service<Request<InnerBody<B>>, Response = Response<ResBody>> + Clone,
    Stack<S>: Service<Request<B>, Response = Response<OuterBody<ResBody>>, Error = S::Error>,
    Core<S>: Service<Request<B>, Response = Response<CoreBody<ResBody>>, Error = S::Error>,
    Lean<S>: Service<Request<B>, Response = Response<LeanBody<ResBody>>, Error = S::Error>,
{
    type Response = Response<OuterBody<ResBody>>;
    type Error = S::Error;
    type Future = StagesFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // The stages before the core keep no readiness of their own: each asks the one
        // inside it, so the core is ready when the whole stack is.
        match self {
            Self::Whole { stack, .. } => stack.poll_ready(cx),
            Self::Lean { stack } => stack.poll_ready(cx),
        }
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self {
            Self::Whole {
                stack,
                at_core: true,
            } => StagesFuture::Core {
                future: core(stack).call(request),
            },
            Self::Whole { stack, .. } => StagesFuture::Whole {
                future: stack.call(request),
            },
            Self::Lean { stack } => StagesFuture::Lean {
                future: stack.call(request),
            },
        }
    }
}

pin_project! {
    /// The response future of [`Stages`]: the whole stack's, its core's, or the lean one's.
    #[project = StackProj]
    pub(super) enum StagesFuture<S, B>
    where
        Stack<S>: Service<Request<B>>,
        Core<S>: Service<Request<B>>,
        Lean<S>: Service<Request<B>>,
    {
        Whole { #[pin] future: <Stack<S> as Service<Request<B>>>::Future },
        Core { #[pin] future: <Core<S> as Service<Request<B>>>::Future },
        Lean { #[pin] future: <Lean<S> as Service<Request<B>>>::Future },
    }
}

impl<S, B, ResBody, E> Future for StagesFuture<S, B>
where
    Stack<S>: Service<Request<B>, Response = Response<OuterBody<ResBody>>, Error = E>,
    Core<S>: Service<Request<B>, Response = Response<CoreBody<ResBody>>, Error = E>,
    Lean<S>: Service<Request<B>, Response = Response<LeanBody<ResBody>>, Error = E>,
{
    type Output = Result<Response<OuterBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            StackProj::Whole { future } => future.poll(cx),
            StackProj::Core { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(outer_body))),
            StackProj::Lean { future } => future.poll(cx).map(|result| {
                result.map(|response| response.map(|body| outer_body(core_body(body))))
            }),
        }
    }
}

/// The core's response body as the whole stack's: the body each stage before
/// authentication would have wrapped it in.
fn outer_body<B>(body: CoreBody<B>) -> OuterBody<B> {
    #[cfg(feature = "oidc")]
    let body = crate::body::ResponseBody::inner(body);
    #[cfg(feature = "rate-limit")]
    let body = crate::body::ResponseBody::inner(body);
    #[cfg(feature = "shield")]
    let body = crate::body::ResponseBody::inner(body);
    body
}

/// The lean stack's response body as the core's: wrapped, inside authorization's body, as
/// the per-identity limits would have wrapped it.
fn core_body<B>(body: LeanBody<B>) -> CoreBody<B> {
    #[cfg(feature = "rate-limit")]
    let body = body.map_inner(|authorized| authorized.map_inner(crate::body::ResponseBody::inner));
    body
}

#[cfg(test)]
mod tests {
    use http::request::Parts;

    use super::*;
    use crate::authenticate::{AuthFuture, AuthOutcome};
    use crate::authz::{RouteRules, public};

    fn nobody(_: &Parts) -> AuthFuture {
        AuthFuture::ready(AuthOutcome::Absent)
    }

    fn builder() -> crate::GatewaySecurityBuilder {
        GatewaySecurityLayer::builder().authenticate(nobody).rules(
            RouteRules::builder()
                .route("GET /health", public())
                .build()
                .expect("rules"),
        )
    }

    /// `lean`, `whole at authentication` or `whole`: the shape `layers` take.
    fn shape(layers: &GatewaySecurityLayer) -> &'static str {
        match Stages::new(layers, ()) {
            Stages::Lean { .. } => "lean",
            Stages::Whole { at_core: true, .. } => "whole at authentication",
            Stages::Whole { .. } => "whole",
        }
    }

    #[test]
    fn each_configuration_takes_the_cheapest_shape_that_does_the_same() {
        assert_eq!(shape(&builder().build().expect("gateway")), "lean");
        #[cfg(feature = "rate-limit")]
        {
            use crate::rate_limit::{Limit, LimitKey, Quota, RateLimitLayer};
            let limits = |key| {
                RateLimitLayer::builder()
                    .limit(Limit::new("limit", key, Quota::per_second(10)))
                    .build()
                    .expect("limits")
            };
            let per_key = builder()
                .rate_limit(limits(LimitKey::ApiKey))
                .build()
                .expect("gateway");
            assert_eq!(shape(&per_key), "whole at authentication");
            let per_ip = builder()
                .rate_limit_before_auth(limits(LimitKey::ClientIp))
                .build()
                .expect("gateway");
            assert_eq!(shape(&per_ip), "whole");
            // A report-only limit still counts and reports.
            let report_only = builder()
                .rate_limit(
                    RateLimitLayer::builder()
                        .limit(Limit::new("limit", LimitKey::ApiKey, Quota::per_second(1)))
                        .dangerous_report_only()
                        .build()
                        .expect("limits"),
                )
                .build()
                .expect("gateway");
            assert_eq!(shape(&report_only), "whole at authentication");
        }
        #[cfg(feature = "oidc")]
        {
            // A login answers its own routes before authentication.
            let oidc = crate::oidc::Oidc::builder("https://idp.example")
                .client_id("gateway")
                .redirect_uri("https://app.example/callback")
                .build()
                .expect("relying party");
            let login = builder().login(oidc).build().expect("gateway");
            assert_eq!(shape(&login), "whole");
        }
        #[cfg(feature = "shield")]
        {
            use crate::shield::ShieldLayer;
            // A shield that only names the client (behind trusted proxies) still runs: it
            // leaves the client's address for the later stages and the handlers.
            let proxies = ShieldLayer::builder()
                .trusted_proxies(["10.0.0.0/8"])
                .build()
                .expect("shield");
            let shielded = builder().shield(proxies).build().expect("gateway");
            assert_eq!(shape(&shielded), "whole");
        }
    }
}
