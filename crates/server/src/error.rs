//! The one error type of the API: an HTTP status and the JSON error object. Internal details are
//! logged, never sent.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use huifu_engine::{Failure, FailureKind};
use huifu_payments::PaymentError;
use serde::Serialize;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{self, Content, Object, Ref, RefOr, ResponseBuilder, Type};
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `idempotency_error`,
    /// `business_error`, `rate_limit_error` or `api_error`.
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    /// Seconds the client should wait before it tries again (the `Retry-After` header).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn invalid(
        code: &'static str,
        message: impl Into<String>,
        param: Option<&str>,
    ) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code,
            message: message.into(),
            param: param.map(str::to_owned),
            retry_after: None,
        }
    }

    pub fn unauthenticated() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "authentication_error",
            code: "invalid_api_key",
            message: "send a valid API key as `Authorization: Bearer <key>`".into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn forbidden() -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            kind: "permission_error",
            code: "forbidden",
            message: "this API key may not do that".into(),
            param: None,
            retry_after: None,
        }
    }

    /// Also what a merchant gets for another merchant's objects: they are invisible to it.
    pub fn not_found(what: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: "resource_missing",
            message: format!("no such {what}"),
            param: None,
            retry_after: None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "api_error",
            code: "unavailable",
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// The engine's queue is full: refused at once rather than wait, so that a full queue
    /// never holds the threads that serve HTTP.
    pub fn busy() -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "api_error",
            code: "engine_busy",
            message: "the engine's queue is full; nothing was done, retry later".into(),
            param: None,
            retry_after: Some(crate::constants::BUSY_RETRY_AFTER_SECONDS),
        }
    }

    /// Whether this is the refusal of a full queue (`busy`), which passes.
    pub fn is_busy(&self) -> bool {
        self.code == "engine_busy"
    }

    /// The engine stopped on `failure`. The message names the folder of the data folder that
    /// failed (`journal`, `history`), not its path nor the error: those are in the server's log.
    pub fn failed(failure: &Failure) -> ApiError {
        let folder = failure
            .folder
            .as_deref()
            .and_then(|f| f.file_name())
            .map_or_else(|| "data".to_owned(), |name| name.to_string_lossy().into_owned());
        let (status, code, message) = match failure.kind {
            FailureKind::StorageFull => {
                let mut error = ApiError::storage_full(&folder);
                error.message.push_str("; writes are refused until there is room again");
                return error;
            }
            FailureKind::Storage => (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_failed",
                format!("the {folder} folder could not be written; the server stops"),
            ),
            FailureKind::Panic => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the engine stopped on an internal error; the server stops".to_owned(),
            ),
        };
        ApiError { status, kind: "api_error", code, message, param: None, retry_after: None }
    }

    /// The disk holding `folder` (of the data folder) is full: nothing was written.
    pub fn storage_full(folder: &str) -> ApiError {
        ApiError {
            status: StatusCode::INSUFFICIENT_STORAGE,
            kind: "api_error",
            code: "insufficient_storage",
            message: format!("the disk holding the {folder} folder is full"),
            param: None,
            retry_after: None,
        }
    }

    /// Above a rate limit (an API key's, or a client address's for failed authentications):
    /// nothing was done; `retry_after` is the seconds until the next request is let through.
    pub fn rate_limited(message: &str, retry_after: u64) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            code: "rate_limited",
            message: message.into(),
            param: None,
            retry_after: Some(retry_after),
        }
    }

    /// The key was revoked (`DELETE /v1/api_keys/{id}`): it is refused for good.
    pub fn key_revoked() -> ApiError {
        ApiError {
            code: "api_key_revoked",
            message: "this API key was revoked".into(),
            ..ApiError::unauthenticated()
        }
    }

    /// The key's `expires_at` has passed (or the overlap of its rotation has ended).
    pub fn key_expired() -> ApiError {
        ApiError {
            code: "api_key_expired",
            message: "this API key has expired".into(),
            ..ApiError::unauthenticated()
        }
    }

    pub fn too_large() -> ApiError {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "invalid_request_error",
            code: "body_too_large",
            message: format!("the body is above {} bytes", crate::constants::BODY_BYTES_MAX),
            param: None,
            retry_after: None,
        }
    }

    /// A body whose `Content-Type` the route does not take.
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            kind: "invalid_request_error",
            code: "unsupported_media_type",
            message: message.into(),
            param: Some("Content-Type".into()),
            retry_after: None,
        }
    }

    pub fn route_not_found(method: &Method, path: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: "route_not_found",
            message: format!("no route for {method} {path}"),
            param: None,
            retry_after: None,
        }
    }

    /// The route exists without this method; the `Allow` header of the reply lists its methods.
    pub fn method_not_allowed(method: &Method, path: &str) -> ApiError {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            kind: "invalid_request_error",
            code: "method_not_allowed",
            message: format!("{path} does not take {method}; the Allow header lists what it takes"),
            param: None,
            retry_after: None,
        }
    }

    pub fn internal() -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "api_error",
            code: "internal",
            message: "internal error".into(),
            param: None,
            retry_after: None,
        }
    }
}

/// The router's fallback: a path no route has.
pub async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::route_not_found(&method, uri.path())
}

/// The fallback of every route for a method it does not take (axum adds the `Allow` header).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(&method, uri.path())
}

/// `response` in the API's error shape, if it is an error that is not already JSON: what axum
/// answers by itself (a body above the limit, a body that could not be read, a request the
/// router refused) is plain text or empty. The headers that tell the client what to do next
/// (`Allow`, `Retry-After`) are kept; the text is not, as it was not written for clients.
pub fn in_error_shape(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::wire::is_json);
    if is_json {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(),
        // The server's own limit on a request's time (`BODY_READ_TIMEOUT_MS`).
        StatusCode::REQUEST_TIMEOUT => ApiError {
            status,
            kind: "invalid_request_error",
            code: "request_timeout",
            message: "the request was not received in time; send its body at once".into(),
            param: None,
            retry_after: None,
        },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::unsupported_media_type("the body's Content-Type is not one this route takes")
        }
        StatusCode::NOT_FOUND => {
            ApiError { code: "route_not_found", ..ApiError::not_found("route") }
        }
        StatusCode::METHOD_NOT_ALLOWED => ApiError {
            status,
            kind: "invalid_request_error",
            code: "method_not_allowed",
            message: "the route does not take this method; the Allow header lists what it takes"
                .into(),
            param: None,
            retry_after: None,
        },
        status if status.is_client_error() => ApiError {
            status,
            kind: "invalid_request_error",
            code: "invalid_request",
            message: format!(
                "the request was refused: {}",
                status.canonical_reason().unwrap_or("client error").to_ascii_lowercase()
            ),
            param: None,
            retry_after: None,
        },
        status => {
            tracing::error!(%status, "an error reply that was not in the API's shape");
            ApiError { status, ..ApiError::internal() }
        }
    };
    let kept = [header::ALLOW, header::RETRY_AFTER]
        .map(|name| response.headers().get(&name).cloned().map(|value| (name, value)));
    let mut response = error.into_response();
    for (name, value) in kept.into_iter().flatten() {
        response.headers_mut().insert(name, value);
    }
    response
}

impl From<PaymentError> for ApiError {
    fn from(e: PaymentError) -> ApiError {
        use PaymentError as E;
        let (status, kind) = match e {
            E::IdempotencyConflict => (StatusCode::CONFLICT, "idempotency_error"),
            E::InvalidId
            | E::InvalidAmount
            | E::InvalidCommission
            | E::NestedBatch
            | E::BatchTooLarge => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            E::UnknownUser
            | E::UnknownMerchant
            | E::UnknownRider
            | E::UnknownChannel
            | E::UnknownCampaign
            | E::UnknownCoupon
            | E::UnknownPayment
            | E::UnknownOperation
            | E::UnknownPayout
            | E::UnknownWebhookEndpoint => (StatusCode::NOT_FOUND, "invalid_request_error"),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "business_error"),
        };
        ApiError {
            status,
            kind,
            code: e.code(),
            message: e.to_string(),
            param: None,
            retry_after: None,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

/// What went wrong, for programs (`type`, `code`, `param`) and for people (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `idempotency_error`,
    /// `business_error`, `rate_limit_error` or `api_error`.
    #[serde(rename = "type")]
    #[schema(example = "invalid_request_error")]
    pub kind: &'static str,
    /// A stable, machine-readable code such as `invalid_id` or `insufficient_funds`.
    #[schema(example = "invalid_id")]
    pub code: &'static str,
    pub message: String,
    /// The body field, query or path parameter or header at fault, when there is one.
    pub param: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorObject {
                kind: self.kind,
                code: self.code,
                message: self.message,
                param: self.param,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The error responses of the API, for the OpenAPI document: each is an [`ErrorBody`].
impl utoipa::IntoResponses for ApiError {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        [
            (400, "The request is malformed: its body, a field, an id (`invalid_id`), a query parameter (`invalid_parameter`) or the Idempotency-Key."),
            (401, "No valid API key: send `Authorization: Bearer <key>` (`invalid_api_key`); the key was revoked (`api_key_revoked`) or has expired (`api_key_expired`)."),
            (403, "This API key's role may not do this."),
            (404, "No such object (another merchant's objects are answered as missing), action or route (`route_not_found`)."),
            (405, "The route does not take this method (`method_not_allowed`); the `Allow` header lists those it takes."),
            (409, "The Idempotency-Key was already used with another request body."),
            (413, "The body is above the size limit."),
            (415, "The body's `Content-Type` is not one the route takes (`unsupported_media_type`): JSON, or for a statement upload XML or CSV."),
            (422, "A business rule refused the operation (funds, state, budget, limits)."),
            (429, "Too many requests (`rate_limited`): above this API key's rate, or, without a valid key, above the client address's rate of failed authentications. Nothing was done; retry after the `Retry-After` header's seconds."),
            (503, "The engine is busy (`engine_busy`: nothing was done; retry after the `Retry-After` header's seconds), its storage failed (`storage_failed`), or it is unavailable or did not answer in time (`unavailable`)."),
            (507, "The disk holding a folder of the data folder is full (`insufficient_storage`): nothing was written. When it holds the engine's journal or history store, the server stops."),
        ]
        .into_iter()
        .map(|(status, description)| {
            let mut response = ResponseBuilder::new().description(description).content(
                "application/json",
                Content::new(Some(Ref::from_schema_name(ErrorBody::name()))),
            );
            let retry = match status {
                503 => Some("With `engine_busy`: seconds to wait before trying again."),
                429 => Some("Seconds until the next request is let through."),
                _ => None,
            };
            if let Some(retry) = retry {
                let seconds = HeaderBuilder::new()
                    .schema(Some(Object::with_type(Type::Integer)))
                    .description(Some(retry))
                    .build();
                response = response.header("Retry-After", seconds);
            }
            let response = response.build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use serde_json::Value;

    use super::*;

    async fn parts(response: Response) -> (u16, HeaderMap, Value) {
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// What axum answers by itself (plain text, or nothing) leaves in the error shape, with
    /// the headers that say what to do next; replies already in it, and successes, are kept.
    #[tokio::test]
    async fn an_error_that_is_not_json_is_put_in_the_error_shape() {
        let plain = (StatusCode::BAD_REQUEST, "Failed to buffer the request body").into_response();
        let (status, _, v) = parts(in_error_shape(plain)).await;
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_request")));
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(!v["error"]["message"].as_str().unwrap().contains("buffer"), "{v}");

        let mut empty = StatusCode::METHOD_NOT_ALLOWED.into_response();
        empty.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
        let (status, headers, v) = parts(in_error_shape(empty)).await;
        assert_eq!((status, v["error"]["code"].as_str()), (405, Some("method_not_allowed")));
        assert_eq!(headers[header::ALLOW], "GET,HEAD");

        let (status, _, v) = parts(in_error_shape(StatusCode::NOT_FOUND.into_response())).await;
        assert_eq!((status, v["error"]["code"].as_str()), (404, Some("route_not_found")));
        let too_large = (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        let (status, _, v) = parts(in_error_shape(too_large)).await;
        assert_eq!((status, v["error"]["code"].as_str()), (413, Some("body_too_large")));
        let mut failed = (StatusCode::BAD_GATEWAY, "upstream").into_response();
        failed.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        let (status, headers, v) = parts(in_error_shape(failed)).await;
        assert_eq!((status, v["error"]["code"].as_str()), (502, Some("internal")));
        assert_eq!(headers[header::RETRY_AFTER], "1");

        let busy = in_error_shape(ApiError::busy().into_response());
        let (status, headers, v) = parts(busy).await;
        assert_eq!((status, v["error"]["code"].as_str()), (503, Some("engine_busy")));
        assert_eq!(headers[header::RETRY_AFTER], "1");
        let csv = ([(header::CONTENT_TYPE, "text/csv")], "a,b\n").into_response();
        let (status, _, _) = parts(in_error_shape(csv)).await;
        assert_eq!(status, 200);
    }
}
