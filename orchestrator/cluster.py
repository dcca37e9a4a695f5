"""Ray: start a private local instance or join a cluster (probed first, so a dead address fails in
seconds), the resources a trial may ask of it (GPUs only where the cluster has them or its autoscaler
can add them), and the guard that a multi-node cluster has storage every node can reach."""

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


def autoscaler_node_types() -> list[dict[str, float]] | None:
    """The resources of each node type the cluster's autoscaler may start (max_count != 0), or None when
    the cluster has no autoscaler (a fixed cluster, a local instance) or Ray cannot say."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # noqa: BLE001 - a private Ray API; without it the cluster is judged by its nodes
        return None
    if config is None or not config.node_group_configs:
        return None
    return [{k: float(v) for k, v in group.resources.items()} for group in config.node_group_configs
            if group.max_count != 0]


def trial_resources(spec: SweepSpec, node_types: list[dict[str, float]] | None = None,
                    nodes: list[dict[str, float]] | None = None) -> dict[str, float]:
    """{'cpu': n, 'gpu': f} that the cluster can satisfy, judged by its live nodes and the node types its
    autoscaler can add; GPUs dropped (with a warning) where neither has any. `nodes` (each node's total
    resources) and `node_types` default to what Ray reports."""
    if nodes is None:
        import ray

        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        node_types = autoscaler_node_types()
    possible = nodes + (node_types or [])
    most_cpus = max((n.get("CPU", 0.0) for n in possible), default=0.0)
    if spec.cpu > most_cpus:
        raise SweepError(f"resources.cpu: a trial asks for {spec.cpu:g} CPUs but the largest Ray node has "
                         f"{most_cpus:g}; lower resources.cpu")
    resources = {"cpu": spec.cpu}
    if spec.gpu > 0:
        most_gpus = max((n.get("GPU", 0.0) for n in possible), default=0.0)
        if most_gpus <= 0:
            print(f"warning: the spec asks for {spec.gpu:g} GPU per trial but the Ray cluster has no GPUs"
                  f"{' and its autoscaler can add none' if node_types else ''}; trials run on CPU", file=sys.stderr)
        elif spec.gpu > most_gpus:
            raise SweepError(f"resources.gpu: a trial asks for {spec.gpu:g} GPUs but no Ray node has that many")
        else:
            if not any(n.get("GPU", 0.0) > 0 for n in nodes):
                print(f"note: no GPU node is up yet; trials wait until the autoscaler adds one "
                      f"({most_gpus:g} GPUs per node)", file=sys.stderr)
            resources["gpu"] = spec.gpu
    return resources


def shared_storage_problem(address: str | None, shared: bool, nodes: int) -> str | None:
    """One line when trials may run on other machines but Ray's storage is this machine's disk."""
    if address is None or shared or nodes <= 1:
        return None
    return (f"--address {address}: the Ray cluster has {nodes} nodes, but trials' checkpoints would go to this "
            f"machine's disk (the sweep directory), which the other nodes cannot reach; give --storage a path "
            f"every node mounts (NFS) or a URI (s3://bucket/sweeps)")


def check_shared_storage(address: str | None, shared: bool) -> None:
    """`shared_storage_problem` for the cluster Ray is connected to (alive nodes and autoscaler types)."""
    if address is None or shared:
        return
    import ray

    alive = sum(1 for n in ray.nodes() if n.get("Alive"))
    types = autoscaler_node_types()
    problem = shared_storage_problem(address, shared, alive + (1 if types else 0))
    if problem:
        raise SweepError(problem)


def disconnect_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
