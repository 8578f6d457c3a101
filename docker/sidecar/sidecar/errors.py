"""Error bodies in OpenAI's shape; messages name parameters, never echo request content."""

from __future__ import annotations

from typing import Final

import orjson

__all__ = ["ApiError", "error_body", "sse_error_event"]

_TYPES: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ApiError(Exception):
    """An error that ends a request with ``status`` and an OpenAI-shaped body."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        *,
        param: str | None = None,
        retry_after: int | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after
        # Answer with "Connection: close" (the rest of the request is not worth reading).
        self.close = close

    def body(self) -> bytes:
        return error_body(self.status, self.message, self.code, self.param)


def error_body(status: int, message: str, code: str, param: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": _TYPES.get(status, "server_error" if status >= 500 else "api_error"),
                "code": code,
                "param": param,
            }
        }
    )


def sse_error_event(status: int, message: str, code: str) -> bytes:
    # Once a stream has started the status line is gone; vLLM and OpenAI report late
    # failures as an error event, which the SDK raises as an APIError. No "[DONE]" after
    # it: a stream that failed must not look finished to a lenient client.
    return b"data: " + error_body(status, message, code) + b"\n\n"
