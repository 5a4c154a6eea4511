"""Running fits on a cluster: the executors ``pb.hmc`` and ``pb.sbc`` accept.

Both take any ``concurrent.futures.Executor``. Dask has one already
(``distributed.Client(...).get_executor()``); Ray has none, so
:class:`RayExecutor` is the few lines that make a Ray cluster one. Neither
engine is imported unless used.
"""
from __future__ import annotations

from concurrent.futures import Executor, Future

__all__ = ["RayExecutor"]


def _call(fn, args, kwargs):
    return fn(*args, **kwargs)


class RayExecutor(Executor):
    """A ``concurrent.futures.Executor`` that runs each call as a Ray task.

    Parameters
    ----------
    **remote_options
        Passed to ``ray.remote`` (e.g. ``num_cpus=1``, ``max_retries=2``).
        Connect first with ``ray.init(address=...)``, or let the first
        submission start a local Ray.

    Examples
    --------
    >>> import ray                                                 # doctest: +SKIP
    >>> ray.init(address="auto")                                   # doctest: +SKIP
    >>> idata = pb.hmc(model, data, executor=RayExecutor())         # doctest: +SKIP
    """

    def __init__(self, **remote_options):
        import ray

        self._ray = ray
        self._task = ray.remote(**{"num_cpus": 1, **remote_options})(_call)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        # Ray pickles with cloudpickle, so models defined in __main__ or a
        # notebook ship as they are; .future() is Ray's own bridge.
        return self._task.remote(fn, args, kwargs).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Ray's tasks belong to the cluster: nothing to tear down here."""
