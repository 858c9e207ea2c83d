"""The child side of the python tool (dsl §9.3): runs user code for `PythonRunner`, one call at a time.

Started as a script (`python -P python_child.py STDOUT_PATH STDERR_PATH MAX_OUTPUT_BYTES`) so that it
imports nothing from the worker and `-P` keeps sibling modules (e.g. a `worker/tools/http.py`) from
shadowing the standard library in user code.

Wire format: frames of a 4-byte big-endian length and a JSON body. Requests arrive on the process's
original stdin and replies leave on its original stdout; both are moved to private descriptors before
any user code runs, so `input()` and `print()` cannot touch the protocol. Descriptors 1 and 2 then
point at the capture files the parent reads after each call, which keeps output written just before
`os._exit` or a segfault, and output of subprocesses too.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import faulthandler
import importlib
import inspect
import io
import json
import keyword
import linecache
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import IO, Any, cast

FILENAME = "<python step>"
# Not "__main__": code written for this DSL relies on the runner calling `main` (rule 3), so an
# `if __name__ == "__main__": main()` guard left in for local testing must not run it a second time.
_MODULE_NAME = "__noetl__"
_WRAPPER = "__noetl_step__"
_HEADER_BYTES = 4


class CappedWriter(io.TextIOBase):
    """An unbuffered text stream on a descriptor that drops whatever exceeds a byte budget per call.

    Unbuffered because a crash gives no chance to flush; the budget is one byte over the limit so
    that the parent can tell a truncated stream from one that fits exactly.
    """

    encoding = "utf-8"

    def __init__(self, fd: int, budget: int) -> None:
        super().__init__()
        self._fd = fd
        self._budget = budget
        self._left = budget

    def reset(self) -> None:
        self._left = self._budget
        os.ftruncate(self._fd, 0)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if self._left > 0:
            data = memoryview(text.encode("utf-8", "backslashreplace")[: self._left])
            self._left -= len(data)
            while data:
                data = data[os.write(self._fd, data) :]
        return len(text)


class _FellThrough:
    """What the wrapped code returns when it ends without `return`: its local names."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope


def _top_level_returns(node: ast.AST) -> bool:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Return):
            return True
        scoped = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
        if not isinstance(child, scoped) and _top_level_returns(child):
            return True
    return False


def _wrap(tree: ast.Module, params: list[str]) -> ast.Module:
    """Turn the module into `def __noetl_step__(<injected names>): <code>; return _FellThrough(locals())`.

    The injected names are also parameters, so code such as `rows = [r for r in rows if r]` keeps
    working once its names become locals of the wrapper.
    """
    template = ast.parse(
        f"def {_WRAPPER}({', '.join(params)}):\n    return __noetl_fell_through__(__noetl_locals__())\n"
    )
    wrapper = cast(ast.FunctionDef, template.body[0])
    wrapper.body[0:0] = tree.body
    return ast.fix_missing_locations(template)


def _injected_names(request: Mapping[str, Any]) -> dict[str, Any]:
    inputs: dict[str, Any] = request["inputs"]
    context: dict[str, Any] = request["context"]
    names: dict[str, Any] = {
        alias: importlib.import_module(module) for alias, module in request["libs"].items()
    }
    names.update(inputs)
    for alias in ("input_data", "args"):
        if alias not in inputs:
            names[alias] = dict(inputs)
    # dsl §9.3 lets an input key win only for input_data and args; these four are always the runtime's.
    names["context"] = context
    names["variables"] = request["variables"]
    names["execution_id"] = context.get("execution_id")
    names["step"] = context.get("step")
    return names


def _call_main(main: Callable[..., Any], inputs: dict[str, Any]) -> Any:
    params = inspect.signature(main).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        kwargs = dict(inputs)
    else:
        by_name = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        kwargs = {p.name: inputs[p.name] for p in params if p.kind in by_name and p.name in inputs}
    value = main(**kwargs)
    if inspect.iscoroutine(value):
        return asyncio.run(value)
    return value


def run_code(request: Mapping[str, Any]) -> Any:
    """Run one call's code in a fresh namespace; return its result, None when nothing was returned.

    Raises whatever the user code raises (SystemExit with a non-zero code included).
    """
    code: str = request["code"]
    names = _injected_names(request)
    namespace: dict[str, Any] = {"__name__": _MODULE_NAME, "__builtins__": builtins, **names}
    # Registered so that tracebacks show the user's source lines.
    linecache.cache[FILENAME] = (len(code), None, code.splitlines(keepends=True), FILENAME)
    tree = ast.parse(code, FILENAME)
    try:
        if _top_level_returns(tree):
            params = [n for n in names if n.isidentifier() and not keyword.iskeyword(n)]
            namespace["__noetl_fell_through__"] = _FellThrough
            namespace["__noetl_locals__"] = builtins.locals
            exec(compile(_wrap(tree, params), FILENAME, "exec"), namespace)
            value = namespace[_WRAPPER](**{n: names[n] for n in params})
            if not isinstance(value, _FellThrough):
                return value
            scope = value.scope
        else:
            exec(compile(tree, FILENAME, "exec"), namespace)
            scope = namespace
    except SystemExit as exc:
        # sys.exit(0) ends a script successfully; whatever it assigned to `result` so far stands.
        if exc.code not in (None, 0):
            raise
        return namespace.get("result")
    result = scope.get("result")
    main = scope.get("main")
    if result is None and callable(main):
        result = _call_main(main, request["inputs"])
    return result


def _jsonable(value: object) -> object:
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    return str(value)


def describe(exc: BaseException) -> str:
    """`"<ExceptionType>: <message>"`, or just the type when the message is empty."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _user_traceback(exc: BaseException) -> TracebackType | None:
    """The traceback from the first frame of user code on; None when the error is not in user code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != FILENAME:
        tb = tb.tb_next
    return tb


def execute(request: Mapping[str, Any]) -> bytes:
    """Run one call and return the reply body: `{ok, data, returned}` or `{ok, error}`."""
    try:
        result = run_code(request)
    # The child must outlive anything user code raises, SystemExit and KeyboardInterrupt included.
    except BaseException as exc:
        lines = traceback.format_exception(type(exc), exc, _user_traceback(exc))
        sys.stderr.write("".join(lines))
        return json.dumps({"ok": False, "error": describe(exc)}).encode()
    try:
        return json.dumps(
            {"ok": True, "data": result, "returned": result is not None}, default=_jsonable
        ).encode()
    except (TypeError, ValueError) as exc:
        return json.dumps({"ok": False, "error": f"result is not JSON-serialisable: {exc}"}).encode()


def _receive(stream: IO[bytes]) -> dict[str, Any] | None:
    header = stream.read(_HEADER_BYTES)
    if len(header) < _HEADER_BYTES:
        return None
    request: dict[str, Any] = json.loads(stream.read(int.from_bytes(header, "big")))
    return request


def _send(stream: IO[bytes], body: bytes) -> None:
    stream.write(len(body).to_bytes(_HEADER_BYTES, "big") + body)
    stream.flush()


def _redirect(path: str, fd: int) -> None:
    capture = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.dup2(capture, fd)
    os.close(capture)


def main(stdout_path: str, stderr_path: str, max_output_bytes: int) -> None:
    """Serve calls until the parent closes the request pipe."""
    # os.dup makes non-inheritable copies, so subprocesses of user code never hold the protocol open.
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    _redirect(stdout_path, 1)
    _redirect(stderr_path, 2)
    out = CappedWriter(1, max_output_bytes + 1)
    err = CappedWriter(2, max_output_bytes + 1)
    faulthandler.enable(file=err)
    home = os.getcwd()
    environment = dict(os.environ)
    _send(replies, b'{"ready": true}')
    while (request := _receive(requests)) is not None:
        # Process-wide state that user code commonly changes is put back before every call.
        sys.stdout, sys.stderr = out, err
        out.reset()
        err.reset()
        os.chdir(home)
        if os.environ != environment:
            os.environ.clear()
            os.environ.update(environment)
        _send(replies, execute(request))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
