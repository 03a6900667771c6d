"""Service cores: one class per proto service, shared by the gRPC and Connect servers.

Each public method is named after its RPC and takes ``(request, call)``; unary
methods return a response message, server-streaming methods are async generators.
Errors are :mod:`agent.errors` types; the transports map them to status codes.
"""
