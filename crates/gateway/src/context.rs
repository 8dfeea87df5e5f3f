//! What the current request is, for code deep in a handler or a detector that has no handle on it: the
//! request id (in error bodies and log lines) and the route template (in audit records).
//!
//! A leaf module: task-local values set by the router's envelope around each request, read anywhere below
//! it without threading them through every call.

tokio::task_local! {
    /// The id of the request being handled, for error bodies built deep in handlers.
    pub(crate) static REQUEST_ID: String;
    /// The route template of the request being handled, for audit records built outside its handler.
    pub(crate) static ROUTE: String;
    /// The address the current request's connection comes from.
    pub(crate) static PEER: Option<std::net::SocketAddr>;
}

/// The id of the current request ("-" outside a request).
pub(crate) fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.clone())
        .unwrap_or_else(|_| "-".into())
}

/// The route template of the current request ("" outside a request).
pub(crate) fn current_route() -> String {
    ROUTE.try_with(|r| r.clone()).unwrap_or_default()
}

/// The peer address of the current request's connection (`None` outside a request or when unknown).
pub(crate) fn current_peer() -> Option<std::net::SocketAddr> {
    PEER.try_with(|p| *p).ok().flatten()
}
