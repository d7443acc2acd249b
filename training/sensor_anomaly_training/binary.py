"""The one way the training package runs the Rust CLI (`sensor-anomaly`): resolved against the
repository (never searched on PATH), its exit code mapped to the package's errors (2 is the
binary's code for bad input data)."""
from __future__ import annotations

import logging
import re
import subprocess
import threading
from pathlib import Path

from .contract import REPO_ROOT

DEFAULT_BIN = "target/release/sensor-anomaly"

log = logging.getLogger(__name__)


class InputError(Exception):
    """Bad input data or arguments: exit code 2."""


class PipelineError(Exception):
    """A step outside our control failed (e.g. the Rust binary): exit code 1."""


def resolve(path) -> Path:
    p = Path(path)
    if not (p.is_absolute() or p.exists()):
        p = REPO_ROOT / p
    return p.absolute()  # never let subprocess search PATH for "./bin"


def run(args: list, what: str) -> subprocess.CompletedProcess:
    """Runs the binary with `args` (the first is the binary) and returns the finished process;
    raises InputError for bad input (exit 2) or a binary that cannot run, PipelineError for any
    other failure, with the end of its stderr."""
    args = [str(a) for a in args]
    log.info("stage=run cmd=%s", " ".join(args))
    try:
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise InputError(f"binary not found: {args[0]} (build it with `cargo build --release` or pass --bin)") from None
    except PermissionError:
        raise InputError(f"binary not executable: {args[0]}") from None
    if proc.returncode == 2:
        raise InputError((proc.stderr or "").strip().removeprefix("error: "))
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-20:])
        raise PipelineError(f"`{what}` failed with exit code {proc.returncode}:\n{tail}")
    return proc


READY_LINE = "handler ready on 127.0.0.1:"


def start_handler(command: list, env: dict, cwd=None, timeout: float = 30.0):
    """Starts the handler (`command`, e.g. `[bin, "serve"]`) on a port it picks itself
    (`FUNCTIONS_CUSTOMHANDLER_PORT=0`) and returns `(process, port)` once its ready line names
    the port: no port is guessed, and a handler that exits first fails with its stderr. The
    rest of stderr is drained in the background. Terminate the process when done."""
    env = {k: v for k, v in env.items() if k != "RUST_LOG"}
    env["FUNCTIONS_CUSTOMHANDLER_PORT"] = "0"
    proc = subprocess.Popen([str(c) for c in command], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found: dict = {}
    seen: list = []
    ready = threading.Event()  # set on the ready line, or when stderr closes (the handler exited)

    def read():
        for line in proc.stderr:
            seen.append(line)
            m = re.search(re.escape(READY_LINE) + r"(\d+)", line)
            if m and not ready.is_set():
                found["port"] = int(m.group(1))
                ready.set()
        ready.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not ready.wait(timeout) or "port" not in found:
        proc.kill()
        proc.wait()
        reader.join(timeout=5)
        raise PipelineError("the handler did not start:\n" + "".join(seen[-20:]))
    proc.stderr_lines = seen  # the handler's log, growing as it runs: for a caller explaining a failure
    return proc, found["port"]
