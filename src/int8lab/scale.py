"""Ray as the engine beyond one machine (the ``ray`` extra): the same functions the local
process pool runs, as Ray tasks on a cluster, a head at an address, or a Ray started here.

Workers read the data, the model and the experiment's cache from the paths they are given, so
those must be readable on every node (a shared filesystem); they write their results there too.
"""

from __future__ import annotations

import contextlib
import sys

from int8lab.errors import UsageError

TASK_RETRIES = 3


@contextlib.contextmanager
def ray_session(address: str):
    """``local``: a Ray instance started on this machine (as ``ray.init(address="local")``);
    ``auto`` or ``HOST:PORT``/``ray://...``: an existing cluster. Shut down afterwards if
    started here."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray-address needs Ray: pip install 'int8lab[ray]'") from None
    started = not ray.is_initialized()
    if started:
        try:
            # A Ray started here, or a head on this machine's loopback, serves this machine only:
            # the driver joins it on the loopback interface too.
            loopback = address == "local" or address.split("://")[-1].rsplit(":", 1)[0] in ("127.0.0.1", "localhost")
            local = {"_node_ip_address": "127.0.0.1"} if loopback else {}
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR", **local)
        except ConnectionError as exc:
            raise UsageError(f"--ray-address {address}: {exc}") from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def ray_map(function, items, shared: tuple, address: str):
    """``function(item, *shared)`` for every item as a Ray task; results in completion order.

    A task whose worker dies (killed, out of memory, its node lost) runs again on another worker,
    up to TASK_RETRIES times: tasks only read their inputs and return their tallies, so a rerun
    gives the same result and the job loses nothing. What Ray prints about it goes to stderr,
    leaving stdout to the results (``--json``)."""
    with ray_session(address) as ray, contextlib.redirect_stdout(sys.stderr):
        remote = ray.remote(max_retries=TASK_RETRIES, retry_exceptions=False)(function)
        shared_ref = ray.put(shared)
        pending = [remote.remote(item, shared_ref) for item in items]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])


def validate_shard(shard: int, shared: tuple):
    """A Ray task: the k-th of n interleaved parts of the evaluation split, scored by its task.
    Returns the task's state (tallies and small records), which the driver merges."""
    from int8lab.data.generator import RepresentativeDataGenerator
    from int8lab.model.source import load_model_source
    from int8lab.runtime import LiteRTModel
    from int8lab.tasks.registry import get_task

    name, quantized, reference, options, data_dir, dataset_type, split, spec, plan, parts = shared
    generator = RepresentativeDataGenerator(data_dir, dataset_type, num_samples=None, split=split, spec=spec,
                                            progress=False, shard=(shard, parts), workers=task_cpus())
    return get_task(name).accumulate(load_model_source(reference, options), LiteRTModel(quantized), generator, plan)


def task_cpus() -> int:
    """The CPUs Ray granted the running task. Its images decode on that many threads (one: in
    line with inference), as its models run: decoding on threads of its own took the CPU of the
    task beside it, and a lone task borrowed an idle core its grant did not hold."""
    import ray

    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
