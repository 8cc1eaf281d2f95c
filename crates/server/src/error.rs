//! The one error type of the API: an HTTP status and the JSON error object. Internal details are
//! logged, never sent.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
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

    pub fn rate_limited() -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            code: "rate_limited",
            message: "too many requests for this API key; slow down".into(),
            param: None,
            retry_after: None,
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
            | E::UnknownPayout => (StatusCode::NOT_FOUND, "invalid_request_error"),
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
    /// The request field or header at fault, when there is one.
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
            (400, "The request is malformed: its body, a field, an id, a query parameter or the Idempotency-Key."),
            (401, "No valid API key: send `Authorization: Bearer <key>`."),
            (403, "This API key's role may not do this."),
            (404, "No such object or route action (another merchant's objects are answered as missing)."),
            (409, "The Idempotency-Key was already used with another request body."),
            (413, "The body is above the size limit."),
            (422, "A business rule refused the operation (funds, state, budget, limits)."),
            (429, "Too many requests for this API key."),
            (503, "The engine is busy (`engine_busy`: nothing was done; retry after the `Retry-After` header's seconds), its storage failed (`storage_failed`), or it is unavailable or did not answer in time (`unavailable`)."),
            (507, "The disk holding a folder of the data folder is full (`insufficient_storage`): nothing was written. When it holds the engine's journal or history store, the server stops."),
        ]
        .into_iter()
        .map(|(status, description)| {
            let mut response = ResponseBuilder::new().description(description).content(
                "application/json",
                Content::new(Some(Ref::from_schema_name(ErrorBody::name()))),
            );
            if status == 503 {
                let seconds = HeaderBuilder::new()
                    .schema(Some(Object::with_type(Type::Integer)))
                    .description(Some(
                        "With `engine_busy`: seconds to wait before trying again.",
                    ))
                    .build();
                response = response.header("Retry-After", seconds);
            }
            let response = response.build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
    }
}
