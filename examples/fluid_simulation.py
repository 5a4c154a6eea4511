"""Backpropagation through a fluid simulation: steer smoke into a letter.

A 2-D incompressible fluid on a periodic grid carries a smoke density. Each
step of the simulation

1. *projects* the velocity onto divergence-free fields: solve the Poisson
   equation ``laplacian(p) = div(v)`` by Jacobi sweeps written with
   ``np.roll`` (the grid wraps around), then subtract ``grad(p)``;
2. *advects* velocity and smoke semi-Lagrangianly (Stam's "stable fluids"):
   the value at each cell is read from where the fluid there came from,
   ``position - dt * v``, by bilinear interpolation between the four
   surrounding cells. The cell indices come from ``floor`` and
   ``astype(int)``, wrap with ``%``, and select by fancy indexing.

Every one of those operations is differentiable with respect to the
velocity (``floor`` and the integer indices are piecewise constant; the
interpolation weights carry the derivative), so ``probad.ad`` can
backpropagate the mismatch between the final smoke and a target image
through the whole run to the *initial* velocity field. scipy's L-BFGS then
optimises that field, 2 N^2 numbers, so that a disc of smoke flows into the
letter "P" (drawn from a small bitmap, no data files).

Run: ``python examples/fluid_simulation.py`` (about a minute; writes
``examples/figures/fluid_simulation.png``).
"""
from __future__ import annotations

import os

# A bare Figure draws without pyplot, so importing this script never
# changes the caller's matplotlib backend.
from matplotlib.figure import Figure
import numpy as onp  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

import probad.ad.numpy as np  # noqa: E402
from probad.ad import value_and_grad  # noqa: E402

DEFAULT_FIGURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures", "fluid_simulation.png")

GLYPH_P = [
    "........",
    ".#####..",
    ".##..##.",
    ".##..##.",
    ".#####..",
    ".##.....",
    ".##.....",
    "........",
]


# ----------------------------------------------------------------- simulator
def project(vx, vy, sweeps: int):
    """Remove the divergent part of ``(vx, vy)`` (periodic grid, unit spacing).

    Arrays are indexed ``[row, column]`` = ``[y, x]``. Divergence and pressure
    gradient use central differences; Jacobi is slower to converge than
    Gauss-Seidel but each sweep is a handful of whole-array ``roll``s, which
    is what a tracing autodiff wants.
    """
    div = 0.5 * (np.roll(vx, -1, axis=1) - np.roll(vx, 1, axis=1)
                 + np.roll(vy, -1, axis=0) - np.roll(vy, 1, axis=0))
    p = onp.zeros(vx.shape)
    for _ in range(sweeps):
        neighbours = (np.roll(p, 1, axis=0) + np.roll(p, -1, axis=0)
                      + np.roll(p, 1, axis=1) + np.roll(p, -1, axis=1))
        p = 0.25 * (neighbours - div)
    vx = vx - 0.5 * (np.roll(p, -1, axis=1) - np.roll(p, 1, axis=1))
    vy = vy - 0.5 * (np.roll(p, -1, axis=0) - np.roll(p, 1, axis=0))
    return vx, vy


def advect(field, vx, vy, dt: float):
    """Semi-Lagrangian transport of ``field`` by ``(vx, vy)`` over ``dt``."""
    n_rows, n_cols = field.shape
    rows, cols = np.meshgrid(onp.arange(n_rows), onp.arange(n_cols), indexing="ij")
    # Trace each cell back to where its fluid was ``dt`` ago.
    x = cols - dt * vx
    y = rows - dt * vy
    x_floor, y_floor = np.floor(x), np.floor(y)
    wx, wy = x - x_floor, y - y_floor  # bilinear weights; all of the derivative is here
    c0 = x_floor.astype(int) % n_cols
    r0 = y_floor.astype(int) % n_rows
    c1 = (c0 + 1) % n_cols
    r1 = (r0 + 1) % n_rows
    top = (1.0 - wx) * field[r0, c0] + wx * field[r0, c1]
    bottom = (1.0 - wx) * field[r1, c0] + wx * field[r1, c1]
    return (1.0 - wy) * top + wy * bottom


def simulate(vx, vy, smoke, steps: int, dt: float = 1.0, sweeps: int = 20, record=None):
    """Run the fluid ``steps`` steps and return the final smoke; if ``record``
    is a list, append the smoke after every step to it."""
    for _ in range(steps):
        vx, vy = project(vx, vy, sweeps)
        # Velocity carries itself and the smoke along; read all three from
        # the same (old) velocity so the step does not depend on the order.
        vx, vy, smoke = advect(vx, vx, vy, dt), advect(vy, vx, vy, dt), advect(smoke, vx, vy, dt)
        if record is not None:
            record.append(smoke)
    return smoke


# ------------------------------------------------------------------- images
def smooth(image, passes: int):
    """Blur by repeated 5-point averaging (periodic), to soften hard edges."""
    for _ in range(passes):
        image = (4 * image + onp.roll(image, 1, 0) + onp.roll(image, -1, 0)
                 + onp.roll(image, 1, 1) + onp.roll(image, -1, 1)) / 8.0
    return image


def letter_target(n: int) -> onp.ndarray:
    """The glyph scaled up to ``n x n`` (``n`` a multiple of 8), softened."""
    glyph = onp.array([[c == "#" for c in row] for row in GLYPH_P], dtype=float)
    scale = n // glyph.shape[0]
    return smooth(onp.kron(glyph, onp.ones((scale, scale))), passes=max(1, scale // 2))


def disc_smoke(n: int, mass: float) -> onp.ndarray:
    """A soft disc in the middle of the grid holding ``mass`` in total."""
    rows, cols = onp.meshgrid(onp.arange(n), onp.arange(n), indexing="ij")
    centre = (n - 1) / 2.0
    radius = onp.sqrt(mass / onp.pi)  # a unit-density disc of the right area
    disc = (onp.hypot(rows - centre, cols - centre) <= radius).astype(float)
    return smooth(disc, passes=max(1, n // 16))


# ------------------------------------------------------------- optimisation
def main(n: int = 64, steps: int = 50, sweeps: int = 20, iterations: int = 80, seed: int = 0,
         out_path: str = DEFAULT_FIGURE) -> dict:
    """Optimise the initial velocity so the smoke ends up as the target letter.

    Parameters
    ----------
    n : int
        Grid size (a multiple of 8).
    steps : int
        Simulation steps.
    sweeps : int
        Jacobi sweeps per pressure projection.
    iterations : int
        L-BFGS iterations.
    seed : int
        Seed of the small random initial velocity.
    out_path : str
        Where to save the figure.

    Returns
    -------
    dict
        ``losses`` (the objective at each L-BFGS iterate, first = before),
        ``initial_loss``, ``final_loss``, ``velocity`` (optimised ``(vx, vy)``),
        ``target``, ``smoke`` (start), ``before`` and ``after`` (final smoke).
    """
    target = letter_target(n)
    smoke0 = disc_smoke(n, mass=target.sum())
    scale = onp.sum(target**2)

    def loss(v):
        vx, vy = np.reshape(v, (2, n, n))
        final = simulate(vx, vy, smoke0, steps, sweeps=sweeps)
        return np.sum((final - target) ** 2) / scale

    # Start from a small random field, not exactly zero: at v = 0 every cell
    # backtraces onto a grid point, where bilinear interpolation has a kink.
    v0 = 0.01 * onp.random.default_rng(seed).normal(size=2 * n * n)
    losses = [float(loss(v0))]
    result = minimize(value_and_grad(loss), v0, jac=True, method="L-BFGS-B",
                      callback=lambda v: losses.append(float(loss(v))),
                      options={"maxiter": iterations})
    print(f"fluid {n}x{n}, {steps} steps: loss {losses[0]:.4f} -> {losses[-1]:.4f} "
          f"after {result.nit} L-BFGS iterations ({result.nfev} simulations with gradient)")

    vx, vy = onp.reshape(result.x, (2, n, n))
    shown_velocity = project(vx, vy, sweeps)  # what the first step actually moves with
    before = simulate(*onp.reshape(v0, (2, n, n)), smoke0, steps, sweeps=sweeps)
    frames = []
    after = simulate(vx, vy, smoke0, steps, sweeps=sweeps, record=frames)
    plot(smoke0, target, before, after, frames, shown_velocity, losses, out_path)
    return {"losses": losses, "initial_loss": losses[0], "final_loss": losses[-1],
            "velocity": (vx, vy), "target": target, "smoke": smoke0, "before": before, "after": after}


def plot(smoke0, target, before, after, frames, velocity, losses, out_path):
    steps = len(frames)
    fig = Figure(figsize=(14, 7.2), layout="constrained")
    axes = fig.subplots(2, 4)
    images = [(smoke0, "initial smoke"), (target, "target"),
              (before, f"after {steps} steps, small random v0"),
              (after, f"after {steps} steps, optimised v0")]
    vmax = max(float(onp.max(im)) for im, _ in images)
    for ax, (image, title) in zip(axes[0], images):
        ax.imshow(image, cmap="magma", vmin=0.0, vmax=vmax, origin="upper")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])

    n = smoke0.shape[0]
    vx, vy = velocity
    ax = axes[1, 0]
    speed = onp.hypot(vx, vy)
    ax.imshow(speed, cmap="Blues", origin="upper")
    grid = onp.arange(n)
    ax.streamplot(grid, grid, vx, vy, color="k", density=1.0, arrowsize=0.7,
                  linewidth=0.4 + 1.6 * speed / speed.max())
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_title("initial velocity (projected)")
    ax.set_xticks([])
    ax.set_yticks([])

    for ax, step in zip(axes[1, 1:3], (steps // 3, 2 * steps // 3)):
        ax.imshow(frames[step - 1], cmap="magma", vmin=0.0, vmax=vmax, origin="upper")
        ax.set_title(f"optimised run, step {step}")
        ax.set_xticks([])
        ax.set_yticks([])

    ax = axes[1, 3]
    ax.semilogy(losses, "o-", ms=3)
    ax.set_xlabel("L-BFGS iteration")
    ax.set_ylabel("relative squared error to target")
    ax.set_title("loss")
    ax.grid(True, which="both", alpha=0.3)

    fig.suptitle("Optimising the initial velocity of a fluid through its simulation")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=110)


if __name__ == "__main__":
    main()
