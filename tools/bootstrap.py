"""Make a fresh clone runnable with nothing but python3.

Shared by the `noetl-mesh` and `run-tests` entry points, so it uses the standard library only:
it runs before any dependency is installed. Every step is skipped when a stamp says it is
already done, so the common path costs a few file reads and prints nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
# The real `noetl` CLI gets a venv of its own: its Python package is named `noetl`, which would
# shadow our generated `noetl.v1` proto package if both lived in one site-packages.
CLI_VENV = VENV / "cli"
GEN = REPO / "gen"
MIN_PYTHON = (3, 11)

_MAIN_REQUIREMENTS = ("requirements.txt", "requirements-dev.txt")
_CLI_REQUIREMENTS = ("requirements-cli.txt",)
_STAMP = ".requirements.sha256"
_PROTO_STAMP = ".protos.sha256"
_PATH_FILE = "_noetl_mesh_repo.pth"


class BootstrapError(Exception):
    """A set-up step failed; the message says which and what to do."""


def ensure_environment() -> Path:
    """Bring `.venv`, `.venv/cli` and `gen/` up to date and return the project interpreter.

    Raises:
        BootstrapError: the interpreter is too old, or venv creation, pip or protogen failed.
    """
    if sys.version_info < MIN_PYTHON:
        raise BootstrapError(
            f"noetl-mesh needs Python {'.'.join(map(str, MIN_PYTHON))}+, this is {sys.version.split()[0]}"
        )
    VENV.mkdir(exist_ok=True)
    with _exclusive(VENV / ".bootstrap.lock"):
        python = _ensure_venv(VENV, _MAIN_REQUIREMENTS, "dependencies")
        _ensure_venv(CLI_VENV, _CLI_REQUIREMENTS, "the noetl CLI")
        _ensure_repo_on_path(VENV)
        _ensure_stubs(python)
    return python


# The console's browser tests (tests/browser/) drive this: Debian's build, from Debian's archive.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
BROWSER_PACKAGES = ("chromium", "fonts-dejavu-core")


def ensure_browser() -> None:
    """Install Debian's Chromium for the browser tests when no Chromium is on PATH.

    Only apt-get as root can do it; elsewhere a note says what to install and the rest of the
    suite still runs (the browser tests then fail, naming the missing browser).

    Raises:
        BootstrapError: apt-get was run and failed.
    """
    if any(shutil.which(name) for name in BROWSER_NAMES):
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        _progress("Chromium is missing: the browser tests need it (Debian: apt-get install chromium)")
        return
    _progress("installing Chromium (Debian's package) for the console's browser tests…")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run([apt, "update", "-q"], "apt-get update failed (see the output above)", env=env)
    _run(
        [apt, "install", "-y", "-q", "--no-install-recommends", *BROWSER_PACKAGES],
        "apt-get install chromium failed (see the output above)",
        env=env,
    )


def exec_python(python: Path, args: Sequence[str]) -> NoReturn:
    """Replace this process with `python args...` (signals and exit codes then need no relaying)."""
    os.execv(python, [str(python), *args])


def run_main(main: Callable[[], int]) -> NoReturn:
    """Run an entry point's `main()`, turning BootstrapError into a one-line message and exit 1."""
    try:
        code = main()
    except BootstrapError as exc:
        print(f"bootstrap: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    raise SystemExit(code)


def _ensure_venv(path: Path, requirements: Sequence[str], what: str) -> Path:
    python = path / "bin" / "python"
    if not python.exists():
        _progress(f"creating venv {path.relative_to(REPO)}…")
        try:
            venv.EnvBuilder(with_pip=True, symlinks=True).create(path)
        except (OSError, subprocess.CalledProcessError) as exc:
            # Typically a distribution Python without ensurepip (Debian: apt-get install python3-venv).
            raise BootstrapError(f"cannot create {path}: {exc}") from None
    files = [REPO / name for name in requirements]
    # The interpreter version is part of the digest: a venv rebuilt on another Python needs a reinstall.
    digest = _digest(files, extra=sys.version)
    stamp = path / _STAMP
    if _read(stamp) != digest:
        _progress(f"installing {what}…")
        args = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        for file in files:
            args += ["-r", str(file)]
        _run(args, f"pip install for {what} failed (see the output above)")
        stamp.write_text(digest)
    return python


def _ensure_repo_on_path(path: Path) -> None:
    """Let `python -m services.catalog` and `import noetl.v1` work from any directory."""
    site_packages = sorted(path.glob("lib/python3*/site-packages"))
    if len(site_packages) != 1:
        raise BootstrapError(f"cannot find the site-packages of {path}; delete it and rerun")
    pth = site_packages[0] / _PATH_FILE
    content = f"{REPO}\n{GEN}\n"
    if _read(pth) != content:
        pth.write_text(content)


def _ensure_stubs(python: Path) -> None:
    generator = REPO / "tools" / "protogen.py"
    if not generator.exists():
        return
    # The generator itself is hashed too: a change in how stubs are made must regenerate them.
    digest = _digest([*sorted((REPO / "protos").rglob("*.proto")), generator])
    stamp = GEN / _PROTO_STAMP
    if _read(stamp) == digest:
        return
    _progress("generating protobuf stubs…")
    _run([str(python), "-m", "tools.protogen"], "tools/protogen.py failed (see the output above)")
    GEN.mkdir(exist_ok=True)
    stamp.write_text(digest)


def _digest(files: Sequence[Path], extra: str = "") -> str:
    hasher = hashlib.sha256(extra.encode())
    for file in files:
        hasher.update(str(file.relative_to(REPO)).encode() + b"\0")
        hasher.update(file.read_bytes() + b"\0")
    return hasher.hexdigest()


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _run(args: Sequence[str], failure: str, env: dict[str, str] | None = None) -> None:
    if subprocess.run(args, cwd=REPO, check=False, env=env).returncode != 0:
        raise BootstrapError(failure)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise bootstraps: two commands started together on a fresh clone must not both pip install."""
    with lock_path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _progress("waiting for another bootstrap to finish…")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _progress(message: str) -> None:
    print(f"bootstrap: {message}", file=sys.stderr, flush=True)
