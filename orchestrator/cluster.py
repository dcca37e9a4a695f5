"""Ray: start a private local instance or join a cluster (probed first, so a dead address fails in
seconds), and the resources a trial may ask of it (GPUs only where the cluster has them)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from .layout import SweepError, first_line

if TYPE_CHECKING:
    from .spec import SweepSpec


RAY_PROBE_TIMEOUT_S = 5.0  # how long a cluster address may take to accept a TCP connection


def _ray_endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) that must answer for `address` (HOST[:PORT] or ray://HOST[:PORT]); None for 'auto' when
    Ray finds no recorded cluster (ray.init then says so itself)."""
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address

            address = canonicalize_bootstrap_address("auto") or ""
        except Exception:  # noqa: BLE001 - Ray's own lookup; let ray.init report its problem
            return None
        if not address:
            return None
    client = address.startswith("ray://")
    rest = address[len("ray://"):] if client else address
    host, sep, port = rest.rpartition(":") if not rest.endswith("]") else (rest, "", "")
    if not sep:
        host, port = rest, "10001" if client else "6379"
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SweepError(f"--address {address}: expected 'auto', HOST:PORT (a node of the cluster, port 6379) or "
                         f"ray://HOST:10001")
    return host, int(port)


def probe_ray(address: str) -> None:
    """Fail within RAY_PROBE_TIMEOUT_S when nothing listens at `address` (ray.init would retry for minutes)."""
    import socket

    endpoint = _ray_endpoint(address)
    if endpoint is None:
        return
    host, port = endpoint
    try:
        with socket.create_connection((host, port), timeout=RAY_PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or type(exc).__name__)
        raise SweepError(f"cannot join the Ray cluster at {address}: nothing answers at {host}:{port} ({reason}); "
                         f"start it with `ray start --head` or check --address") from None


def connect_ray(address: str | None, num_cpus: int | None) -> None:
    """Start a local Ray instance (address None) or join an existing cluster."""
    import ray
    from ray.exceptions import RayError

    try:
        if address is None:  # "local": always a new private instance, never someone else's cluster
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
        else:
            if num_cpus is not None:
                raise SweepError("--num-cpus only applies to the local Ray instance; drop it with --address")
            probe_ray(address)
            ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError, RayError) as exc:  # RayError: e.g. AuthenticationError
        if isinstance(exc, SweepError):
            raise
        raise SweepError(f"cannot {'start Ray' if address is None else f'join the Ray cluster at {address}'}: "
                         f"{first_line(exc)}") from None


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """{'cpu': n, 'gpu': f} that the cluster can satisfy; GPUs dropped (with a warning) where there are none."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    most_cpus = max((n["Resources"].get("CPU", 0.0) for n in nodes), default=0.0)
    if spec.cpu > most_cpus:
        raise SweepError(f"resources.cpu: a trial asks for {spec.cpu:g} CPUs but the largest Ray node has "
                         f"{most_cpus:g}; lower resources.cpu")
    resources = {"cpu": spec.cpu}
    if spec.gpu > 0:
        gpus = ray.cluster_resources().get("GPU", 0.0)
        if gpus <= 0:
            print(f"warning: the spec asks for {spec.gpu:g} GPU per trial but the Ray cluster has no GPUs; "
                  f"trials run on CPU", file=sys.stderr)
        elif spec.gpu > max((n["Resources"].get("GPU", 0.0) for n in nodes), default=0.0):
            raise SweepError(f"resources.gpu: a trial asks for {spec.gpu:g} GPUs but no Ray node has that many")
        else:
            resources["gpu"] = spec.gpu
    return resources


def disconnect_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
