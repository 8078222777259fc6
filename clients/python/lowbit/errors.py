"""Errors raised by the lowbit SDK."""
from __future__ import annotations

from typing import Optional

import grpc

# google.rpc.Code numbers (as carried in lowbit.v1.Error.code) -> grpc.StatusCode.
_STATUS_BY_NUMBER = {status.value[0]: status for status in grpc.StatusCode}


def status_code_from_number(number: int) -> grpc.StatusCode:
    """Maps a google.rpc.Code number to grpc.StatusCode (UNKNOWN if out of range)."""
    return _STATUS_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


class LowbitError(Exception):
    """A failed call or a failed streamed frame.

    Attributes:
        code: the gRPC status, e.g. ``grpc.StatusCode.INVALID_ARGUMENT``.
        message: the server's explanation (or the transport's).
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "LowbitError":
        """Wraps a grpc.RpcError (which is also a grpc.Call for failed calls)."""
        code: Optional[grpc.StatusCode] = error.code() if hasattr(error, "code") else None
        details: Optional[str] = error.details() if hasattr(error, "details") else None
        return cls(code or grpc.StatusCode.UNKNOWN, details or str(error))

    @classmethod
    def from_proto(cls, number: int, message: str) -> "LowbitError":
        """Builds the error of a streamed result from its lowbit.v1.Error fields."""
        return cls(status_code_from_number(number), message)
