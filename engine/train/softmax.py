"""A softmax layer fitted to convergence: full-batch L-BFGS on cached features (numpy + scipy).

The head retrained on a frozen backbone is a multinomial logistic
regression: a convex problem. retrain.py's plain SGD (4,000 steps of 100
photos at rate 0.01) stops long before its optimum; full-batch L-BFGS
reaches it in a few hundred iterations, in seconds.

`fit_softmax` minimises the mean cross-entropy (weighted per class when
asked) plus `l2 / 2 * |W|^2` (the bias is not penalised) on features
standardised with the same weights (a feature's spread floored at a tenth of
the widest one's, `STD_FLOOR`), starting from zero, so a fit is deterministic. The
standardisation is folded back into the returned kernel and bias, so the
layer applies to raw features exactly as a Keras `Dense` does.
`choose_l2` fits each strength of a grid and keeps the one with the best
validation accuracy (ties: the lower validation cross-entropy, then the
stronger penalty).

The matrix products run in float32 on one BLAS thread: on a busy two-core
machine multi-threaded OpenBLAS made each fit about ten times slower.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.core.errors import StudioError

# L2 strengths tried on the validation split (features are standardised first).
L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
# Used when there is no validation split to choose on.
DEFAULT_L2 = 1e-3
GRADIENT_TOLERANCE = 1e-6
# Features are scaled to unit spread, but never by more than the widest one's spread times this:
# blowing up near-constant features (ReLU6 backbones have many) amplifies noise and, folded into
# the layer, gave kernels of 3,000 that int8 quantization flattened (digits: -67 points in int8).
STD_FLOOR = 0.1
MAX_ITERATIONS = 4000


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of `(N, classes)` logits, float64 (shifted by each row's largest first)."""
    shifted = np.asarray(logits, np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@dataclass
class SoftmaxHead:
    """A softmax layer on raw features: `probabilities = softmax(x @ kernel + bias)`.

    Attributes:
        kernel: float32 `(features, classes)`.
        bias: float32 `(classes,)`.
        l2: the L2 strength it was fitted with.
        iterations: L-BFGS iterations the fit took.
        converged: whether L-BFGS met its tolerance before the iteration cap.
        seconds: the fit's wall time.
    """

    kernel: np.ndarray
    bias: np.ndarray
    l2: float
    iterations: int = 0
    converged: bool = False
    seconds: float = 0.0

    def logits(self, features: np.ndarray) -> np.ndarray:
        """`features @ kernel + bias`, float64 `(N, classes)`."""
        return np.asarray(features, np.float32) @ self.kernel + self.bias.astype(np.float64)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Softmax probabilities, float32 `(N, classes)`."""
        return softmax(self.logits(features)).astype(np.float32)

    def score(self, features: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """`(accuracy, mean cross-entropy)` on labelled features ((0, 0) when there are none)."""
        return _score(self.logits(features), np.asarray(labels, np.int64))


@dataclass(frozen=True)
class Iteration:
    """What an L-BFGS iteration reached, handed to `fit_softmax`'s `on_iteration`.

    Attributes:
        number: 1-based iteration.
        train_accuracy: accuracy on the training features.
        cross_entropy: mean (unweighted) cross-entropy on them.
        learning_rate: how far the iteration moved per unit of gradient,
            `|x_k - x_(k-1)| / |grad f(x_(k-1))|` (plain gradient descent's rate).
        head: the layer at this iteration.
    """

    number: int
    train_accuracy: float
    cross_entropy: float
    learning_rate: float
    head: SoftmaxHead


@dataclass(frozen=True)
class L2Result:
    """One strength of `choose_l2`'s grid and how it did on the validation split."""

    l2: float
    validation_accuracy: float
    validation_cross_entropy: float
    iterations: int
    converged: bool
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "l2": self.l2,
            "validation_accuracy": round(self.validation_accuracy, 6),
            "validation_cross_entropy": round(self.validation_cross_entropy, 6),
            "iterations": self.iterations,
            "converged": self.converged,
            "seconds": round(self.seconds, 3),
        }


def _score(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    if not len(labels):
        return 0.0, 0.0
    top = logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    cross_entropy = float(np.mean(log_norm - logits[np.arange(len(labels)), labels]))
    return float(np.mean(logits.argmax(axis=1) == labels)), cross_entropy


def _weighted_sum(x: np.ndarray, weights: np.ndarray, centre: Any, block: int = 8192) -> np.ndarray:
    """`weights @ x` (centre 0.0) or `weights @ (x - centre) ** 2`, in float64 blocks of rows."""
    total = np.zeros(x.shape[1])
    for start in range(0, len(x), block):
        rows = x[start : start + block].astype(np.float64)
        if not isinstance(centre, float):
            rows = np.square(rows - centre)
        total += weights[start : start + block] @ rows
    return total


def _one_blas_thread() -> Any:
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


class _Problem:
    """The standardised training features and labels, shared by every fit of a grid."""

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        class_count: int,
        sample_weights: np.ndarray | None,
    ) -> None:
        x = np.asarray(features, np.float32)
        y = np.asarray(labels, np.int64).reshape(-1)
        if x.ndim != 2 or len(x) != len(y) or not len(y):
            raise StudioError(
                f"features {x.shape} and labels {y.shape} do not match; give one label per feature row"
            )
        if y.min() < 0 or y.max() >= class_count:
            raise StudioError(f"labels hold {y.min()}..{y.max()}; allowed 0..{class_count - 1}")
        weights = np.ones(len(y)) if sample_weights is None else np.asarray(sample_weights, np.float64)
        self.weights = weights / weights.sum()
        # weighted, so that a row of weight 2 is exactly that row twice
        self.mean = _weighted_sum(x, self.weights, 0.0)
        std = np.sqrt(_weighted_sum(x, self.weights, self.mean))
        self.std = np.maximum(std, STD_FLOOR * std.max()) if std.max() > 0 else np.ones_like(std)
        self.z = ((x - self.mean) / self.std).astype(np.float32)
        self.y = y
        self.rows = np.arange(len(y))
        self.k = class_count
        self.d = x.shape[1]
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def unpack(self, theta: np.ndarray, l2: float, seconds: float = 0.0) -> SoftmaxHead:
        """Raw-feature kernel and bias from standardised parameters."""
        w = theta[: self.d * self.k].reshape(self.d, self.k)
        kernel = w / self.std[:, None]
        bias = theta[self.d * self.k :] - self.mean @ kernel
        return SoftmaxHead(kernel.astype(np.float32), bias.astype(np.float32), l2, seconds=seconds)

    def objective(self, theta: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
        size = self.d * self.k
        w = theta[:size].reshape(self.d, self.k)
        logits = (self.z @ w.astype(np.float32)).astype(np.float64) + theta[size:]
        top = logits.max(axis=1, keepdims=True)
        exp = np.exp(logits - top)
        total = exp.sum(axis=1, keepdims=True)
        log_norm = np.log(total[:, 0]) + top[:, 0]
        per_row = log_norm - logits[self.rows, self.y]
        loss = float(self.weights @ per_row) + 0.5 * l2 * float(theta[:size] @ theta[:size])
        residual = exp / total
        residual[self.rows, self.y] -= 1.0
        residual *= self.weights[:, None]
        grad_w = (self.z.T @ residual.astype(np.float32)).astype(np.float64) + l2 * w
        gradient = np.concatenate([grad_w.ravel(), residual.sum(axis=0)])
        self._last = (theta.copy(), logits, gradient)
        return loss, gradient

    def at(self, theta: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
        """Training logits and gradient at `theta` (the last evaluation's when it was there)."""
        if self._last is None or not np.array_equal(self._last[0], theta):
            self.objective(theta, l2)
        assert self._last is not None
        return self._last[1], self._last[2]

    def fit(
        self,
        l2: float,
        max_iterations: int,
        on_iteration: Callable[[Iteration], None] | None,
        should_stop: Callable[[], bool] | None = None,
    ) -> SoftmaxHead:
        from scipy.optimize import minimize

        theta0 = np.zeros(self.d * self.k + self.k)
        previous = {"theta": theta0, "gradient": self.at(theta0, l2)[1]}
        count = 0

        def callback(intermediate_result: Any) -> None:
            nonlocal count
            count += 1
            if should_stop is not None and should_stop():
                raise FitStopped
            if on_iteration is None:
                return
            theta = np.asarray(intermediate_result.x)
            logits, gradient = self.at(theta, l2)
            moved = float(np.linalg.norm(theta - previous["theta"]))
            pushed = float(np.linalg.norm(previous["gradient"]))
            previous.update(theta=theta.copy(), gradient=gradient)
            accuracy, cross_entropy = _score(logits, self.y)
            on_iteration(
                Iteration(count, accuracy, cross_entropy, moved / pushed if pushed else 0.0,
                          self.unpack(theta, l2))
            )  # fmt: skip

        start = time.monotonic()
        with _one_blas_thread():
            result = minimize(
                self.objective, theta0, args=(l2,), jac=True, method="L-BFGS-B", callback=callback,
                options={"maxiter": max_iterations, "gtol": GRADIENT_TOLERANCE},
            )  # fmt: skip
        head = self.unpack(result.x, l2, time.monotonic() - start)
        head.iterations = int(result.nit)
        head.converged = bool(result.success) and int(result.nit) < max_iterations
        return head


def fit_softmax(
    features: np.ndarray,
    labels: np.ndarray,
    class_count: int,
    *,
    l2: float = DEFAULT_L2,
    sample_weights: np.ndarray | None = None,
    max_iterations: int = MAX_ITERATIONS,
    on_iteration: Callable[[Iteration], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SoftmaxHead:
    """Fit a softmax layer to convergence with full-batch L-BFGS.

    Args:
        features: `(N, F)` training features.
        labels: `(N,)` class indices.
        class_count: the number of classes (some may have no rows).
        l2: the L2 strength on the standardised kernel. Defaults to `DEFAULT_L2`.
        sample_weights: a weight per row (class weights). Defaults to None (all equal).
        max_iterations: the iteration cap. Defaults to 4000.
        on_iteration: called after every iteration; raising stops the fit. Defaults to None.
        should_stop: polled every iteration; True raises `FitStopped`. Defaults to None.

    Returns:
        The fitted `SoftmaxHead`.

    Raises:
        StudioError: features and labels do not match, or a label is out of range.
        FitStopped: `should_stop` said so.
    """
    problem = _Problem(features, labels, class_count, sample_weights)
    return problem.fit(float(l2), max_iterations, on_iteration, should_stop)


def choose_l2(
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    class_count: int,
    *,
    grid: Sequence[float] = L2_GRID,
    sample_weights: np.ndarray | None = None,
    max_iterations: int = MAX_ITERATIONS,
    on_result: Callable[[L2Result], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[SoftmaxHead, list[L2Result]]:
    """Fit every L2 strength of `grid` and keep the best on the validation split.

    Best means the highest validation accuracy, then the lowest validation
    cross-entropy, then the strongest penalty. Without validation rows,
    `DEFAULT_L2` is fitted alone.

    Args:
        train: `(features, labels)` to fit on.
        validation: `(features, labels)` to choose on.
        class_count: the number of classes.
        grid: the strengths to try. Defaults to `L2_GRID`.
        sample_weights: a weight per training row. Defaults to None.
        max_iterations: the iteration cap of each fit. Defaults to 4000.
        on_result: called with each strength's `L2Result` as it is known. Defaults to None.
        should_stop: polled every iteration; True raises `FitStopped`. Defaults to None.

    Returns:
        The chosen head and every strength's result, in grid order.

    Raises:
        StudioError: bad shapes, or an empty grid.
        FitStopped: `should_stop` said so (its `best` is the best head fitted so far, or None).
    """
    if not grid:
        raise StudioError("the L2 grid is empty; give at least one strength")
    problem = _Problem(*train, class_count, sample_weights)
    val_x, val_y = np.asarray(validation[0], np.float32), np.asarray(validation[1], np.int64)
    strengths = list(grid) if len(val_y) else [DEFAULT_L2]

    results: list[L2Result] = []
    best: tuple[tuple[float, float, float], SoftmaxHead] | None = None
    for l2 in sorted(strengths, reverse=True):
        try:
            head = problem.fit(float(l2), max_iterations, None, should_stop)
        except FitStopped as stopped:
            stopped.best = best[1] if best is not None else None
            raise
        accuracy, cross_entropy = head.score(val_x, val_y)
        result = L2Result(l2, accuracy, cross_entropy, head.iterations, head.converged, head.seconds)
        results.append(result)
        if on_result is not None:
            on_result(result)
        rank = (-accuracy, cross_entropy, -l2)
        if best is None or rank < best[0]:
            best = (rank, head)
    assert best is not None
    return best[1], sorted(results, key=lambda r: r.l2)


class FitStopped(Exception):
    """Raised inside a fit when its `should_stop` asks for it.

    Attributes:
        best: from `choose_l2`, the best head of the strengths fitted before it stopped.
    """

    best: SoftmaxHead | None = None
