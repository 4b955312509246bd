"""The Python wasi@0.2.x host: every interface whose types involve streams, pollables or errors.

wasmtime's own WASI (add_wasip2) keeps the interfaces that do not (environment, exit, wall
clock, random, terminal, sockets/network): its resource types cannot mix with Python ones.
Modules: io, cli, clocks, filesystem, sockets, http (wasi:http/types: the request, response and
body resources).
"""
