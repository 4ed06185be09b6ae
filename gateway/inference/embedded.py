"""Run the real Triton Inference Server without Docker.

The ``nvidia-pytriton`` wheel ships a complete ``tritonserver`` binary with the Python backend.
We start that binary on our own model repository (see ../shared/notes/triton-embedded.md for
what it needs: a writable backend directory holding the stub for this Python, libcudart and
libpython on ``LD_LIBRARY_PATH``, this venv first on ``PATH``), watch it, and restart it when it
dies, so the gateway survives a crashed model process without an operator.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import psutil

from gateway.config import Settings

log = logging.getLogger(__name__)

#: Models the gateway cannot work without; others (``item_detector``) may be absent or broken.
REQUIRED_MODELS = ("ocr_det", "ocr_rec", "ocr_pipeline")
_PR_SET_PDEATHSIG = 1
SHM_PREFIX = "/dev/shm/triton_python_backend_shm_region_"
STUB_NAME = "triton_python_backend_stub"  # the kernel keeps the first 15 characters
_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


class TritonStartError(RuntimeError):
    """The embedded server did not become ready; the message carries the tail of its log."""


def pytriton_root() -> Path:
    """``pytriton/tritonserver`` inside the installed wheel (found without importing it)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonStartError(
            "nvidia-pytriton is not installed: pip install nvidia-pytriton==0.7.0"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    if not (root / "bin" / "tritonserver").is_file():
        raise TritonStartError(f"no tritonserver binary under {root}")
    return root


def default_work_dir() -> Path:
    """Per-user cache for the backend directory and server logs (never inside the repo)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    path = Path(base) / "shelfcount" / "triton"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        path = Path(tempfile.gettempdir()) / f"shelfcount-triton-{os.getuid()}"
        path.mkdir(parents=True, exist_ok=True)
    return path


def prepare_backends(root: Path, work_dir: Path) -> Path:
    """A backend directory whose ``python/`` holds the backend library and our Python's stub.

    The server only looks for the stub in ``<backend-directory>/python/`` and the wheel keeps
    one stub per Python version elsewhere, so we assemble the directory once per version. It is
    built in a scratch folder and renamed into place so that concurrent starts never see a
    half-copied stub.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonStartError(
            f"the pytriton wheel has no Python backend stub for Python {version}"
        )
    sources = [
        root / "backends" / "python" / "libtriton_python.so",
        root / "backends" / "python" / "triton_python_backend_utils.py",
        stub,
    ]
    target = work_dir / f"backends-py{version}"
    if all(
        (target / "python" / s.name).is_file()
        and (target / "python" / s.name).stat().st_size == s.stat().st_size
        for s in sources
    ):
        return target
    scratch = Path(tempfile.mkdtemp(prefix="backends-", dir=work_dir))
    (scratch / "python").mkdir()
    for source in sources:
        shutil.copy2(source, scratch / "python" / source.name)
    shutil.rmtree(target, ignore_errors=True)
    try:
        scratch.rename(target)
    except OSError:  # another process won the race with an identical copy
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def free_ports(count: int) -> list[int]:
    """Ports the kernel says are free right now (a later bind can still lose a race)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


# Exec'd first in the child: asks the kernel to SIGTERM the process when the thread that
# spawned it dies, then becomes tritonserver (the setting survives exec). Only the long-lived
# watchdog thread spawns, so this fires when our process ends, even by SIGKILL, and no orphaned
# server keeps the ports and memory. A launcher instead of preexec_fn: forking a threaded
# process and running Python code before exec can deadlock the child.
_LAUNCHER = (
    "import ctypes, os, sys\n"
    "try:\n"
    f"    ctypes.CDLL(None).prctl({_PR_SET_PDEATHSIG}, {int(signal.SIGTERM)})\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _prune_logs(folder: Path, max_age_s: float = 7 * 86400) -> None:
    """Drop server logs of past runs after a week (each run writes its own file)."""
    cutoff = time.time() - max_age_s
    for path in folder.glob("tritonserver-*.log"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


class EmbeddedTriton:
    """The ``tritonserver`` binary from the nvidia-pytriton wheel, as a supervised child.

    ``start()`` returns the gRPC URL once the server and the required models are ready. A
    watchdog thread restarts the server (same ports, so clients keep their URL) when it dies;
    ``stop()`` (also run at exit and by the context manager) kills its whole process group,
    Python backend stubs included.
    """

    def __init__(
        self,
        model_repository: Path,
        *,
        start_timeout_s: float = 120.0,
        required_models: Iterable[str] = REQUIRED_MODELS,
        work_dir: Path | None = None,
        watchdog_interval_s: float = 1.0,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.start_timeout_s = start_timeout_s
        self.required_models = tuple(required_models)
        self.work_dir = Path(work_dir) if work_dir else default_work_dir()
        self.watchdog_interval_s = watchdog_interval_s
        self.log_path = self.work_dir / f"tritonserver-{os.getpid()}-{id(self):x}.log"
        self.restarts = 0
        self._ports: list[int] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._spawn_wanted = threading.Event()
        self._spawned = threading.Condition(self._lock)
        self._spawn_error: BaseException | None = None
        self._generation = 0
        self._watchdog: threading.Thread | None = None
        self._shm_regions: set[str] = set()
        self._stub_pids: set[int] = set()
        self._reloading = threading.Event()
        self._reload_lock = threading.Lock()

    # -- public API -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``127.0.0.1:PORT`` of the gRPC endpoint (valid after ``start()``)."""
        if not self._ports:
            raise RuntimeError("EmbeddedTriton is not started")
        return f"127.0.0.1:{self._ports[0]}"

    @property
    def metrics_url(self) -> str:
        """Triton's own Prometheus metrics (inference counts, queue and compute times)."""
        if not self._ports:
            raise RuntimeError("Triton has not been started")
        return f"http://127.0.0.1:{self._ports[2]}/metrics"

    @property
    def pid(self) -> int | None:
        """Process id of the running tritonserver (tests kill it to check the restart)."""
        process = self._process
        return process.pid if process and process.poll() is None else None

    def start(self) -> str:
        """Start the server, wait until the required models are ready, return the gRPC URL."""
        if not self.model_repository.is_dir():
            raise TritonStartError(f"model repository {self.model_repository} does not exist")
        with self._lock:
            if self._watchdog is None:
                self._stopping.clear()
                self._watchdog = threading.Thread(
                    target=self._watch, name="triton-watchdog", daemon=True
                )
                self._watchdog.start()
                atexit.register(self.stop)
        try:
            self._respawn_and_wait()
        except BaseException:
            self.stop()
            raise
        return self.url

    def wait_ready(self, timeout_s: float) -> None:
        """Block until the server and the required models answer ready."""
        deadline = time.monotonic() + timeout_s
        while True:
            process = self._process
            if (
                process is not None
                and process.poll() is None
                and self._models_ready()
                # Noted now, not on the watchdog's next tick: a stub that died in between
                # would be missing from the list and its death would go unnoticed.
                and (self._stub_pids or self._remember_children())
            ):
                return
            self._raise_if_load_failed()
            if time.monotonic() >= deadline:
                raise TritonStartError(
                    f"Triton not ready after {timeout_s:.0f}s; last log lines "
                    f"({self.log_path}):\n{_tail(self.log_path)}"
                )
            time.sleep(0.2)

    def model_status(self) -> dict[str, tuple[str, str]]:
        """``{model: (state, reason)}`` from the server's repository index (e.g. a model that
        failed to load shows ``UNAVAILABLE`` with the error)."""
        import tritonclient.grpc as grpcclient

        with grpcclient.InferenceServerClient(self.url) as client:
            index = client.get_model_repository_index(as_json=True, client_timeout=5)
        return {
            m["name"]: (m.get("state", ""), m.get("reason", "")) for m in index.get("models", [])
        }

    def load_model(self, name: str, timeout_s: float = 120.0) -> None:
        """(Re)load one model, e.g. to serve the detector version just promoted: Triton loads
        the new version, moves requests to it, then unloads the old one when its requests are
        done. The old version's stub exits then; that is expected here, not taken for a crash.
        """
        import tritonclient.grpc as grpcclient

        with self._reload_lock:
            self._reloading.set()
            try:
                before = set(self._stub_pids)
                with grpcclient.InferenceServerClient(self.url) as client:
                    client.load_model(name, client_timeout=timeout_s)
                self._settle_stubs(before, time.monotonic() + 20.0)
            finally:
                self._reloading.clear()

    def _settle_stubs(self, before: set[int], deadline: float) -> None:
        """Note the stubs after a reload, once the replaced one has exited (or at the deadline,
        when a slow one is left noted: its later exit then restarts the server)."""
        while True:
            process = self._process
            if process is None:
                return
            live = {pid for pid, n in _group_processes(process.pid) if n == STUB_NAME[:15]}
            gone = before - live
            if (gone or time.monotonic() >= deadline) and self._remember_children():
                if not gone:
                    log.warning("after reloading, no old Python backend stub exited")
                return
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server and its watchdog; safe to call twice."""
        self._stopping.set()
        self._spawn_wanted.set()
        watchdog = self._watchdog
        if watchdog is not None and watchdog is not threading.current_thread():
            watchdog.join(timeout=15)
        with self._lock:
            self._watchdog = None
            self._kill()
        atexit.unregister(self.stop)

    def __enter__(self) -> EmbeddedTriton:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------

    def _respawn_and_wait(self) -> None:
        """Ask the watchdog thread to (re)spawn, then wait for readiness in this thread."""
        deadline = time.monotonic() + self.start_timeout_s
        with self._lock:
            generation = self._generation
            process = self._process
            if process is None or process.poll() is not None or self._stub_died():
                self._spawn_error = None
                self._spawn_wanted.set()
                while self._generation == generation and not self._stopping.is_set():
                    if not self._spawned.wait(timeout=max(0.0, deadline - time.monotonic())):
                        raise TritonStartError("the Triton watchdog did not spawn the server")
                if self._spawn_error is not None:
                    raise TritonStartError(str(self._spawn_error)) from self._spawn_error
        if self._stopping.is_set():
            raise TritonStartError("EmbeddedTriton was stopped")
        try:
            self.wait_ready(max(1.0, deadline - time.monotonic()))
        except TritonStartError:
            process = self._process
            if process is not None and process.poll() is not None:
                raise TritonStartError(
                    f"tritonserver exited with status {process.returncode}; last log lines "
                    f"({self.log_path}):\n{_tail(self.log_path)}"
                ) from None
            raise
        self._report_optional_models()

    def _watch(self) -> None:
        """Spawn on request and respawn on death, with a back-off for crash loops."""
        backoff = 0.0
        while not self._stopping.is_set():
            self._spawn_wanted.wait(timeout=self.watchdog_interval_s)
            if self._stopping.is_set():
                break
            process = self._process
            dead = process is None or process.poll() is not None
            if not dead and (self._reloading.is_set() or not self._stub_died()):
                self._spawn_wanted.clear()
                backoff = 0.0
                if self._models_ready():  # stubs noted too early (a loaded host) join late
                    self._remember_children(keep=True)
                continue
            if process is not None:
                log.warning(
                    "tritonserver (pid %d) %s; restarting. Log: %s",
                    process.pid,
                    f"exited with status {process.returncode}"
                    if dead
                    else "lost a Python backend stub (its model cannot recover)",
                    self.log_path,
                )
                self.restarts += 1
                if backoff and not self._spawn_wanted.is_set():
                    self._stopping.wait(backoff)  # crash loop: do not spin
                backoff = min(30.0, backoff * 2 or 1.0)
            with self._lock:
                self._spawn_wanted.clear()
                try:
                    self._spawn()
                except Exception as exc:  # reported to whoever waits in _respawn_and_wait
                    self._spawn_error = exc
                    log.error("could not start tritonserver: %s", exc)
                self._generation += 1
                self._spawned.notify_all()
        with self._lock:
            self._kill()

    def _spawn(self) -> None:
        self._kill()
        root = pytriton_root()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        backends = prepare_backends(root, self.work_dir)
        if not self._ports or not self._ports_free(self._ports):
            self._ports = free_ports(3)
        grpc_port, http_port, metrics_port = self._ports
        libs = root.parent.parent / "nvidia_pytriton.libs"
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p
            for p in (str(libs), sysconfig.get_config_var("LIBDIR"), env.get("LD_LIBRARY_PATH"))
            if p
        )
        env["PATH"] = os.pathsep.join((os.path.dirname(sys.executable), env.get("PATH", "")))
        server_command = [
            str(root / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            f"--cache-directory={root / 'caches'}",
            f"--grpc-port={grpc_port}",
            f"--http-port={http_port}",
            f"--metrics-port={metrics_port}",
            # Loopback only: the embedded server is the gateway's private back end.
            "--grpc-address=127.0.0.1",
            "--http-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            "--allow-gpu-metrics=false",
            # Explicit control, everything loaded at start: the gateway asks for a reload when
            # `shelfcount model promote` changes the detector's live version.
            "--model-control-mode=explicit",
            "--load-model=*",
            # A broken optional model (item_detector) must not take OCR down with it.
            "--exit-on-error=false",
            "--strict-readiness=false",
            "--exit-timeout-secs=5",
            "--log-verbose=0",
            # Large enough for a 960 px detector input without growing the region per request.
            "--backend-config=python,shm-default-byte-size=8388608",
            "--backend-config=python,shm-growth-byte-size=8388608",
        ]
        command = [sys.executable, "-I", "-c", _LAUNCHER, *server_command]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        _prune_logs(self.log_path.parent)
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"\n=== starting: {' '.join(server_command)}\n".encode())
            log_file.flush()
            self._process = subprocess.Popen(  # noqa: S603 - fixed binary, no shell
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    @staticmethod
    def _ports_free(ports: list[int]) -> bool:
        for port in ports:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                # As the server binds: connections of the killed server in TIME_WAIT are fine.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    return False
        return True

    def _models_ready(self) -> bool:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        try:
            with grpcclient.InferenceServerClient(self.url) as client:
                if not client.is_server_ready(client_timeout=2):
                    return False
                return all(
                    client.is_model_ready(name, client_timeout=2) for name in self.required_models
                )
        except InferenceServerException:
            return False

    def _raise_if_load_failed(self) -> None:
        """Fail fast when a required model already failed to load (waiting cannot help)."""
        try:
            status = self.model_status()
        except Exception:  # server not up yet
            return
        failed = {
            name: reason
            for name, (state, reason) in status.items()
            if name in self.required_models and state == "UNAVAILABLE" and reason
        }
        if status:  # the index is complete once the server answers (--load-model=*)
            for name in self.required_models:
                if name not in status:
                    failed[name] = f"no such model in {self.model_repository}"
        if failed:
            details = "; ".join(f"{name}: {reason}" for name, reason in sorted(failed.items()))
            raise TritonStartError(
                f"Triton could not load {details}\nlast log lines ({self.log_path}):\n"
                f"{_tail(self.log_path)}"
            )

    def _report_optional_models(self) -> None:
        try:
            status = self.model_status()
        except Exception:  # best effort: readiness was already confirmed
            return
        for name, (state, reason) in sorted(status.items()):
            if state != "READY":
                first_line = reason.strip().split("\n", 1)[0]
                log.warning("Triton model %s is %s: %s", name, state or "not loaded", first_line)

    def _remember_children(self, keep: bool = False) -> bool:
        """Note the stubs (and their shared memory) of a server that just became ready; False
        while a model is still loading (it may run a short-lived stub to complete its config,
        whose normal exit must not count as a death) or the server does not answer.
        ``keep``: add to the stubs already noted (a noted stub that is gone stays noted, so
        its death is still seen)."""
        process = self._process
        if process is None:
            return False
        try:
            status = self.model_status()
        except Exception:  # not answering: the next readiness check tries again
            return False
        if any(state not in ("READY", "UNAVAILABLE") for state, _ in status.values()):
            return False
        regions = _group_shm_regions(process.pid)
        stubs = {pid for pid, name in _group_processes(process.pid) if name == STUB_NAME[:15]}
        if self._process is not process:  # restarted meanwhile: these belong to the old one
            return False
        if keep:
            regions, stubs = self._shm_regions | regions, self._stub_pids | stubs
        self._shm_regions, self._stub_pids = regions, stubs
        return True

    def _stub_died(self) -> bool:
        """Whether a stub of the running server is gone: Triton answers "not healthy" for its
        model from then on and never starts it again, so only a restart brings it back."""
        for pid in self._stub_pids:
            try:
                if psutil.Process(pid).status() in _GONE:
                    return True
            except psutil.Error:
                return True
        return False

    def _kill(self) -> None:
        """Stop the server (gracefully first), kill leftover stubs, free their shared memory."""
        process = self._process
        if process is None:
            return
        self._process = None
        regions = self._shm_regions | _group_shm_regions(process.pid)
        try:  # the server itself first: it tells its stubs to finish and unlinks their memory
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:  # stubs outlive a SIGKILLed server for a while: take them down too
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.error("tritonserver pid %d did not exit", process.pid)
        # A crashed server leaves its stubs' regions in /dev/shm (RAM): 8 MB or more each.
        for region in regions:
            try:
                os.unlink(region)
            except OSError:
                pass
        self._shm_regions = set()
        self._stub_pids = set()


def _group_processes(pgid: int) -> list[tuple[int, str]]:
    """(pid, kernel process name, at most 15 characters) of the live processes in one group."""
    found = []
    for proc in psutil.process_iter(["name", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] not in _GONE:
                found.append((proc.pid, str(proc.info["name"])[:15]))
        except (OSError, psutil.Error):
            continue
    return found


def _group_shm_regions(pgid: int) -> set[str]:
    """Python-backend shared-memory files mapped by the processes of one process group."""
    regions: set[str] = set()
    for pid, _ in _group_processes(pgid):
        try:
            maps = psutil.Process(pid).memory_maps(grouped=True)
        except psutil.Error:
            continue
        regions.update(m.path for m in maps if m.path.startswith(SHM_PREFIX))
    return regions


def start_triton(settings: Settings) -> tuple[str, EmbeddedTriton | None]:
    """The Triton URL to use: ``settings.triton_url`` when set, else a started embedded one."""
    if settings.triton_url:
        return settings.triton_url, None
    server = EmbeddedTriton(
        settings.model_repository, start_timeout_s=settings.triton_start_timeout_s
    )
    return server.start(), server
