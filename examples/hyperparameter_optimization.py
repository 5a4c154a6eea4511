"""Gradient-based hyperparameter optimisation through an unrolled training run.

A small network is trained by ``T`` steps of mini-batch SGD, step ``t``
using its own learning rate ``exp(log_lr[t])``. The validation loss of the
trained weights is a differentiable function of the whole schedule
``log_lr`` (the SGD updates are ordinary array code, gradients of the
training loss included), so ``grad`` gives the *hypergradient*: how each
step's learning rate should change to lower the validation loss. Adam on
that hypergradient then tunes all ``T`` learning rates at once.

Differentiating through training keeps every intermediate of all ``T``
steps for the backward pass. ``probad.ad.checkpoint`` trades that memory for
time: the run is cut into segments of ``L`` steps, each segment is recorded
as one call that keeps only its inputs, and its inside is recomputed when
the backward pass reaches it. Peak memory falls from ``T`` steps'
intermediates to ``T / L`` copies of the weights plus ``L`` steps'
intermediates, at the price of one extra forward run. Here the weights are
tiny next to one step's activations, so the shortest segments win; when the
state is as large as a step's intermediates the best ``L`` is near
``sqrt(T)``. The example measures peak memory with ``tracemalloc`` and checks
that every checkpointed hypergradient equals the plain one.

Run: ``python examples/hyperparameter_optimization.py`` (writes
``examples/figures/hyperparameter_optimization.png``).
"""
from __future__ import annotations

import gc
import os
import time
import tracemalloc

# A bare Figure draws without pyplot, so importing this script never
# changes the caller's matplotlib backend.
from matplotlib.figure import Figure
import numpy as onp  # noqa: E402

import probad.ad.numpy as np  # noqa: E402
from probad.ad import checkpoint, grad, value_and_grad  # noqa: E402
from probad.ad.misc.optimizers import adam  # noqa: E402

DEFAULT_FIGURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures",
                              "hyperparameter_optimization.png")


class Problem:
    """Data, network and an unrolled SGD run whose schedule we tune.

    Parameters
    ----------
    steps : int
        SGD steps ``T`` (the number of learning rates).
    hidden : int
        Width of the network's two tanh layers.
    batch_size : int
        Mini-batch size; the batch sequence is drawn once, so the run is a
        deterministic function of the schedule.
    seed : int
        Seed of the data, the initial weights and the batch sequence.
    """

    def __init__(self, steps: int = 100, hidden: int = 32, batch_size: int = 32, seed: int = 0):
        rng = onp.random.default_rng(seed)

        def sample(n):
            x = rng.uniform(-3.0, 3.0, size=(n, 1))
            return x, onp.sin(1.5 * x) + 0.1 * rng.normal(size=(n, 1))

        self.train_x, self.train_y = sample(128)
        self.valid_x, self.valid_y = sample(256)
        sizes = [1, hidden, hidden, 1]
        # SGD works on one flat weight vector; each layer is a slice of it.
        self.layer_sizes = list(zip(sizes[:-1], sizes[1:]))
        self.w0 = onp.concatenate([onp.concatenate([rng.normal(size=m * n) / onp.sqrt(m), onp.zeros(n)])
                                   for m, n in self.layer_sizes])
        self.batches = [rng.choice(len(self.train_x), size=batch_size, replace=False)
                        for _ in range(steps)]
        self.steps = steps
        self._checkpointed_segment = checkpoint(self.sgd_segment)

    def layers(self, w):
        """``[(W, b), ...]``, sliced out of the flat weight vector ``w``."""
        out, start = [], 0
        for m, n in self.layer_sizes:
            W = np.reshape(w[start:start + m * n], (m, n))
            b = w[start + m * n:start + m * n + n]
            out.append((W, b))
            start += m * n + n
        return out

    def predict(self, w, x):
        layers = self.layers(w)
        h = x
        for W, b in layers[:-1]:
            h = np.tanh(np.dot(h, W) + b)
        W, b = layers[-1]
        return np.dot(h, W) + b

    def batch_loss(self, w, rows):
        return np.mean((self.predict(w, self.train_x[rows]) - self.train_y[rows]) ** 2)

    def sgd_segment(self, w, log_lrs, first_step):
        """SGD steps ``first_step, first_step + 1, ...``, one per entry of ``log_lrs``."""
        for k in range(len(log_lrs)):
            g = grad(self.batch_loss)(w, self.batches[first_step + k])
            w = w - np.exp(log_lrs[k]) * g
        return w

    def trained_weights(self, log_lrs, segment_length: int | None = None):
        """Weights after the full run; with ``segment_length``, checkpoint
        every ``segment_length`` steps instead of keeping them all."""
        if segment_length is None:
            return self.sgd_segment(self.w0, log_lrs, 0)
        w = self.w0
        for start in range(0, self.steps, segment_length):
            w = self._checkpointed_segment(w, log_lrs[start:start + segment_length], start)
        return w

    def validation_loss(self, log_lrs, segment_length: int | None = None):
        w = self.trained_weights(log_lrs, segment_length)
        return np.mean((self.predict(w, self.valid_x) - self.valid_y) ** 2)

    def learning_curves(self, log_lrs):
        """Training (full set) and validation loss after every step, untraced."""
        w, train, valid = self.w0, [], []
        for t in range(self.steps):
            w = self.sgd_segment(w, log_lrs[t:t + 1], t)
            train.append(float(np.mean((self.predict(w, self.train_x) - self.train_y) ** 2)))
            valid.append(float(np.mean((self.predict(w, self.valid_x) - self.valid_y) ** 2)))
        return train, valid


def hypergradient_cost(problem: Problem, log_lrs, segment_length: int | None) -> dict:
    """Hypergradient with its wall time and tracemalloc peak (bytes above
    the memory in use when it starts)."""
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        start = time.perf_counter()
        value, g = value_and_grad(problem.validation_loss)(log_lrs, segment_length)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"value": float(value), "grad": g, "peak_bytes": peak - base, "seconds": seconds}


def main(steps: int = 100, meta_steps: int = 30, segment_lengths=(1, 4, 10, 25), hidden: int = 32,
         initial_lr: float = 0.02, meta_step_size: float = 0.03, seed: int = 0,
         out_path: str = DEFAULT_FIGURE) -> dict:
    """Measure checkpointing, tune the learning-rate schedule, and plot.

    Parameters
    ----------
    steps : int
        SGD steps in the unrolled run.
    meta_steps : int
        Adam steps on the schedule.
    segment_lengths : sequence of int
        Checkpoint segment lengths to measure (a shorter last segment is
        fine); the tuning uses the one with the smallest peak memory.
    hidden : int
        Network width.
    initial_lr : float
        The constant learning rate the schedule starts from.
    meta_step_size : float
        Adam step size on ``log_lr``.
    seed : int
        Seed of data, weights and batches.
    out_path : str
        Where to save the figure.

    Returns
    -------
    dict
        ``costs`` (per segment length, ``None`` for no checkpointing:
        ``peak_bytes``, ``seconds``, ``value``, ``grad``),
        ``max_grad_difference`` (checkpointed vs plain hypergradient),
        ``meta_losses`` (validation loss at each meta-step, then final),
        ``schedule`` (the tuned learning rates) and the learning curves.
    """
    problem = Problem(steps=steps, hidden=hidden, seed=seed)
    log_lrs0 = onp.full(steps, onp.log(initial_lr))

    costs = {length: hypergradient_cost(problem, log_lrs0, length)
             for length in (None, *segment_lengths)}
    plain = costs[None]
    max_grad_difference = max(float(onp.max(onp.abs(c["grad"] - plain["grad"]))) for c in costs.values())
    print(f"hypergradient over {steps} SGD steps: |grad| = {onp.linalg.norm(plain['grad']):.3e}; "
          f"checkpointed versions differ by at most {max_grad_difference:.1e}")
    print(f"{'checkpoint segment':<20}{'peak MB':>9}{'seconds':>9}")
    for length, c in costs.items():
        label = "none" if length is None else str(length)
        print(f"{label:<20}{c['peak_bytes'] / 2**20:>9.2f}{c['seconds']:>9.2f}")

    # Tune the schedule: Adam on the hypergradient, with the leanest checkpointing.
    best_length = min(segment_lengths, key=lambda n: costs[n]["peak_bytes"])
    meta_losses = []

    def hypergradient(log_lrs, i):
        value, g = value_and_grad(problem.validation_loss)(log_lrs, best_length)
        meta_losses.append(float(value))
        return g

    tuned = adam(hypergradient, log_lrs0, num_iters=meta_steps, step_size=meta_step_size)
    meta_losses.append(float(problem.validation_loss(tuned)))
    print(f"validation loss: {meta_losses[0]:.4f} (constant lr {initial_lr}) -> {meta_losses[-1]:.4f} "
          f"after {meta_steps} hypergradient steps")

    curves = {"before": problem.learning_curves(log_lrs0), "after": problem.learning_curves(tuned)}
    plot(costs, meta_losses, onp.exp(log_lrs0), onp.exp(tuned), curves, out_path)
    return {"costs": costs, "max_grad_difference": max_grad_difference, "meta_losses": meta_losses,
            "schedule": onp.exp(tuned), "curves": curves}


def plot(costs, meta_losses, schedule0, schedule, curves, out_path):
    fig = Figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(2, 2)

    ax = axes[0, 0]
    ax.plot(schedule0, "--", color="0.5", label="initial (constant)")
    ax.plot(schedule, lw=1.8, label="tuned")
    ax.set(xlabel="SGD step", ylabel="learning rate", title="Learning-rate schedule")
    ax.legend(frameon=False)

    ax = axes[0, 1]
    for key, style in (("before", "--"), ("after", "-")):
        train, valid = curves[key]
        ax.semilogy(train, style, color="C0", label=f"training, {key} tuning")
        ax.semilogy(valid, style, color="C1", label=f"validation, {key} tuning")
    ax.set(xlabel="SGD step", ylabel="mean squared error", title="Training run")
    ax.legend(frameon=False, fontsize=9)

    ax = axes[1, 0]
    ax.plot(meta_losses, "o-", ms=3)
    ax.set(xlabel="hypergradient (Adam) step", ylabel="validation loss after training",
           title="Tuning the schedule by gradient")

    ax = axes[1, 1]
    labels = ["none" if k is None else str(k) for k in costs]
    peaks = [c["peak_bytes"] / 2**20 for c in costs.values()]
    bars = ax.bar(labels, peaks, color=["0.6"] + ["C2"] * (len(peaks) - 1))
    for bar, c in zip(bars, costs.values()):
        ax.annotate(f"{c['seconds']:.1f} s", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set(xlabel="checkpoint segment length (SGD steps)", ylabel="peak memory of one hypergradient (MB)",
           title="Memory for time (labels: seconds, timed under tracemalloc)")

    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=110)


if __name__ == "__main__":
    main()
