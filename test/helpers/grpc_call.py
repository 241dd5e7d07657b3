"""One gRPC call with Debian's python3-grpcio, as an independent client for the proxy's tests.

Usage: grpc_call.py TARGET METHOD REQUEST_HEX [KEY=VALUE ...]
Sends REQUEST_HEX (a serialized protobuf message) to METHOD (/package.Service/Method) with a
5 s deadline and the metadata given, and prints one JSON line: the status code's name, the
details, the answer's bytes as hex, and the trailing metadata.
"""
import json
import sys

import grpc


def main() -> None:
    target, method, request_hex, *pairs = sys.argv[1:]
    metadata = [tuple(p.split("=", 1)) for p in pairs]
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(method)  # no (de)serializers: raw message bytes both ways
        try:
            answer, info = call.with_call(bytes.fromhex(request_hex), timeout=5, metadata=metadata)
            code, details, trailers, body = info.code(), info.details(), info.trailing_metadata(), answer.hex()
        except grpc.RpcError as err:
            code, details, trailers, body = err.code(), err.details(), err.trailing_metadata(), None
    print(json.dumps({
        "code": code.name,
        "details": details,
        "answer": body,
        "trailers": {k: v for k, v in (trailers or ()) if not k.endswith("-bin")},
    }))


if __name__ == "__main__":
    main()
