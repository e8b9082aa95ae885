"""Drive a real ComfyUI server with this pack installed: start, submit prompts, collect outputs, stop.

Used by the integration tests (a session-scoped pytest fixture), the demo (``make demo``) and the benchmarks.
The host is the ComfyUI tree that ``scripts/bootstrap.sh`` installs into ``.host/ComfyUI``.

Example::

    with ComfyHost.start() as host:
        info = host.object_info()
        outputs = host.run(api_prompt)          # raises PromptFailed with the node's error message
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_COMFY = ROOT / ".host" / "ComfyUI"
PACK_LINK_NAME = "comfyui-imagedynamics"


class PromptFailed(RuntimeError):
    """A prompt was rejected at validation or failed while executing; ``details`` holds the server's answer."""

    def __init__(self, message: str, details: dict):
        super().__init__(message)
        self.details = details


def _stop_with_parent() -> None:
    """In the server's process before it starts: on Linux, SIGTERM it when the process that started it dies, so a
    killed test run or demo does not leave a server behind (its own session keeps it from the terminal's signals)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ComfyHost:
    """A running ComfyUI server on loopback, owned by this process (stopped by its own PID)."""

    process: subprocess.Popen
    port: int
    base_dir: pathlib.Path
    log_path: pathlib.Path
    owns_base_dir: bool = False
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ----------------------------------------------------------------------------------------- lifecycle
    @classmethod
    def start(cls, base_dir: str | os.PathLike | None = None, comfy_dir: str | os.PathLike = DEFAULT_COMFY,
              python: str = sys.executable, extra_args: tuple[str, ...] = (), timeout: float = 180.0) -> ComfyHost:
        """Link the pack into ``base_dir/custom_nodes``, start the server with ``--cpu`` and wait until it answers."""
        comfy_dir = pathlib.Path(comfy_dir)
        if not (comfy_dir / "main.py").exists():
            raise FileNotFoundError(f"no ComfyUI at {comfy_dir}: run scripts/bootstrap.sh first")
        owns = base_dir is None
        base = pathlib.Path(tempfile.mkdtemp(prefix="comfy-base-")) if owns else pathlib.Path(base_dir)
        for sub in ("custom_nodes", "input", "output", "temp", "user", "models/motion_models"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        link = base / "custom_nodes" / PACK_LINK_NAME
        if link.is_symlink() and link.resolve() != ROOT.resolve():
            link.unlink()  # a base folder reused by another checkout of the pack (make demo's .host/demo-base)
        if not link.exists():
            link.symlink_to(ROOT, target_is_directory=True)
        port = free_port()
        log_path = base / "server.log"
        log = open(log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        command = [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                   "--base-directory", str(base), "--disable-auto-launch", *extra_args]
        process = subprocess.Popen(command, cwd=comfy_dir, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True, preexec_fn=_stop_with_parent)
        host = cls(process=process, port=port, base_dir=base, log_path=log_path, owns_base_dir=owns)
        host._wait_ready(timeout)
        return host

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        """Stop the server by its own process group (never by name), then remove a temporary base dir."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=10)
        if self.owns_base_dir and os.environ.get("IMAGEDYNAMICS_KEEP_HOST") != "1":
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> ComfyHost:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ----------------------------------------------------------------------------------------- HTTP
    def get(self, path: str, timeout: float = 30.0):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.loads(response.read() or b"null")

    def post(self, path: str, data: dict, timeout: float = 30.0):
        request = urllib.request.Request(self.url + path, data=json.dumps(data).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:  # validation errors come back as 400 with a JSON body
            body = error.read()
            try:
                return json.loads(body)
            except json.JSONDecodeError:
                raise RuntimeError(f"POST {path} -> {error.code}: {body[:500]!r}") from error

    def object_info(self) -> dict:
        return self.get("/object_info")

    def submit(self, prompt: dict) -> str:
        """Queue an API-format prompt; return its id, or raise PromptFailed on validation errors."""
        answer = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})
        if "prompt_id" not in answer or answer.get("node_errors"):
            raise PromptFailed(_describe_validation(answer), answer)
        return answer["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600.0) -> dict:
        """Wait for a prompt's ``/history`` entry; return it, or raise PromptFailed if execution failed."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history:
                entry = history[prompt_id]
                status = entry.get("status", {})
                if status.get("status_str") == "error":
                    raise PromptFailed(_describe_execution_error(entry), entry)
                if status.get("completed", True):
                    return entry
            if not self.alive():
                raise RuntimeError(f"ComfyUI died while running {prompt_id}:\n{self.log()[-4000:]}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")

    def interrupt_running(self, after: float, start_timeout: float = 60.0, ignored_after: float = 10.0) -> float:
        """Wait until the queued prompt runs, let it run ``after`` seconds, POST /interrupt, and return the seconds
        until the queue was free (TimeoutError if it never started or ignored the interrupt; RuntimeError if it
        finished before it could be interrupted)."""
        deadline = time.monotonic() + start_timeout
        while not self.get("/queue")["queue_running"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the prompt never started within {start_timeout:.0f} s")
            time.sleep(0.05)
        time.sleep(after)
        if not self.get("/queue")["queue_running"]:
            raise RuntimeError(f"the prompt finished within {after} s, before it could be interrupted")
        asked = time.monotonic()
        self.post("/interrupt", {})
        while self.get("/queue")["queue_running"]:
            if time.monotonic() - asked > ignored_after:
                raise TimeoutError(f"the interrupt was ignored for {ignored_after:.0f} s")
            time.sleep(0.02)
        return time.monotonic() - asked

    def run(self, prompt: dict, timeout: float = 600.0) -> dict:
        """Submit, wait, and return ``{node_id: outputs}`` of a successful prompt."""
        return self.wait(self.submit(prompt), timeout)["outputs"]

    def output_path(self, item: dict) -> pathlib.Path:
        """Where a saved file listed in a node's outputs (``{"filename", "subfolder", "type"}``) is on disk."""
        return self.base_dir / item.get("type", "output") / item.get("subfolder", "") / item["filename"]


def _describe_validation(answer: dict) -> str:
    lines = [answer.get("error", {}).get("message", "prompt rejected") if isinstance(answer.get("error"), dict)
             else str(answer.get("error", "prompt rejected"))]
    for node_id, errors in (answer.get("node_errors") or {}).items():
        for error in errors.get("errors", []):
            lines.append(f"node {node_id} ({errors.get('class_type')}): {error.get('message')}: "
                         f"{error.get('details')}")
    return "\n".join(lines)


def _describe_execution_error(entry: dict) -> str:
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return (f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                    f"{data.get('exception_type')}: {data.get('exception_message')}")
    return "prompt failed"
