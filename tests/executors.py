"""Executors for tests of the driver's executor path."""
from concurrent.futures import Executor, Future


class InlineExecutor(Executor):
    """Runs each call when it is submitted, here: the main thread of a main
    process, as a Ray worker is. The driver still takes its executor path
    (chains shipped with cloudpickle, stop flag, progress relay), and the
    test sees what a worker does (monkeypatched functions included)."""

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        future.set_result(fn(*args, **kwargs))
        return future
