"""Ray: start a private local instance or join a cluster (probed first, so a dead address fails in
seconds), the resources a trial may ask of it (GPUs only where the cluster has them or its autoscaler
can add them), and the guard that a multi-node cluster has storage every node can reach."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

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
    nodes, node_types = _cluster(nodes, node_types)
    return _fit(spec.cpu, spec.gpu, "resources", nodes, node_types)


def _cluster(nodes: list[dict[str, float]] | None,
             node_types: list[dict[str, float]] | None) -> tuple[list[dict[str, float]], list[dict[str, float]] | None]:
    if nodes is None:
        import ray

        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        node_types = autoscaler_node_types()
    return nodes, node_types


def _fit(cpu: float, gpu: float, key: str, nodes: list[dict[str, float]],
         node_types: list[dict[str, float]] | None) -> dict[str, float]:
    """The request {'cpu': cpu, 'gpu': gpu} checked against the cluster (`trial_resources`); `key` names
    the spec key it came from. A gpu of 0 is never requested."""
    possible = nodes + (node_types or [])
    most_cpus = max((n.get("CPU", 0.0) for n in possible), default=0.0)
    if cpu > most_cpus:
        raise SweepError(f"{key}.cpu: a trial asks for {cpu:g} CPUs but the largest Ray node has "
                         f"{most_cpus:g}; lower {key}.cpu")
    resources = {"cpu": cpu}
    if gpu > 0:
        most_gpus = max((n.get("GPU", 0.0) for n in possible), default=0.0)
        if most_gpus <= 0:
            print(f"warning: {'the spec' if key == 'resources' else key} asks for {gpu:g} GPU per trial but the "
                  f"Ray cluster has no GPUs{' and its autoscaler can add none' if node_types else ''}; trials run "
                  f"on CPU", file=sys.stderr)
        elif gpu > most_gpus:
            raise SweepError(f"{key}.gpu: a trial asks for {gpu:g} GPUs but no Ray node has that many")
        else:
            if not any(n.get("GPU", 0.0) > 0 for n in nodes):
                print(f"note: no GPU node is up yet; trials wait until the autoscaler adds one "
                      f"({most_gpus:g} GPUs per node)", file=sys.stderr)
            resources["gpu"] = gpu
    return resources


@dataclass(frozen=True)
class RowResources:
    """What `tune.with_resources` calls with a trial's config: the resources of the bundle (row) it runs,
    else the spec's. Picklable (Tune stores the trainable with its experiment)."""

    default: Mapping[str, float]
    param: str  # the bundle parameter whose rows carry resources
    rows: Mapping[str, Mapping[str, float]]  # bundle name -> checked {'cpu': n, 'gpu': f}

    def __call__(self, config: Mapping[str, Any]) -> Any:
        from ray.tune import PlacementGroupFactory

        chosen = self.rows.get(config.get(self.param), self.default)  # type: ignore[arg-type]
        bundle = {"CPU": chosen["cpu"], **({"GPU": chosen["gpu"]} if chosen.get("gpu") else {})}
        return PlacementGroupFactory([bundle])


def resources_request(spec: SweepSpec, node_types: list[dict[str, float]] | None = None,
                      nodes: list[dict[str, float]] | None = None) -> dict[str, float] | RowResources:
    """What `tune.with_resources` gets: the spec's `resources` (`trial_resources`), or a `RowResources`
    when bundles carry their own (a row's missing cpu or gpu is the spec's)."""
    nodes, node_types = _cluster(nodes, node_types)
    default = _fit(spec.cpu, spec.gpu, "resources", nodes, node_types)
    owner = next((p for p in spec.space.params if p.resources), None)
    if owner is None:
        return default
    rows = {group: _fit(given.get("cpu", spec.cpu), given.get("gpu", spec.gpu),
                        f"space.{owner.name}.choice.{group}.resources", nodes, node_types)
            for group, given in owner.resources.items()}
    return RowResources(default, owner.name, rows)


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
