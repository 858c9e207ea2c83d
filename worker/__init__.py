"""The worker: claims commands and runs their tools (dsl.md §16)."""

import os

# The python tool starts interpreter children (fork, then exec) while gRPC's threads run. With
# gRPC's fork handlers on, the forked child restarts gRPC threads before its exec and can die of
# SIGSEGV ("python process failed to start"). The children never use gRPC, so the handlers are
# switched off. This has to run before grpc is first imported, hence the package's __init__.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
