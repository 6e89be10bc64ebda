"""Which fit trains the head, and the L-BFGS one as a drop-in for retrain.py's step loop.

`--head_fit lbfgs` (the default) fits the new layer to convergence on the
cached features (`engine.train.softmax`): first every L2 strength of the
grid, scored on the validation split, then the chosen strength once more
with every iteration reported as a step. `--head_fit sgd` is retrain.py's
loop (`engine.train.loop.StepLoop`), unchanged. Augmentation and fine-tuning
need images at every step, so they always run the SGD loop
(`head_fit_used` says which fit a config gets, and why).

`LbfgsLoop` speaks the step loop's language: the same `step` events,
retrain.py's `Step N: ...` lines at each evaluation, the `accuracy`,
`cross_entropy` and `learning_rate` scalars in `tb/train` and the validation
ones in `tb/validation`, and a head whose kernel and bias are a Keras
`Dense`'s; unlike the step loop it needs no TensorFlow at all.
A step is one L-BFGS iteration over the whole training split; its
`learning_rate` is how far the iteration moved per unit of gradient, and each
evaluation scores the whole validation split (what the L2 was chosen on).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.core.progress import ProgressCallback, ProgressTracker
from engine.train.config import TrainConfig
from engine.train.events import RunCancelled
from engine.train.head import class_weight_vector
from engine.train.loop import LoopBase, TrainingData, sample_rows, step_event, step_lines
from engine.train.softmax import (
    L2_GRID,
    FitStopped,
    Iteration,
    L2Result,
    SoftmaxHead,
    choose_l2,
    fit_softmax,
)
from engine.train.summaries import Summaries


def head_fit_used(config: TrainConfig) -> tuple[str, str | None]:
    """The fit a run gets: `("lbfgs" | "sgd", why it is not the one asked for, or None)`.

    Args:
        config: the run's settings.
    """
    if config.head_fit == "sgd":
        return "sgd", None
    if config.fine_tune_blocks:
        return "sgd", "fine-tuning trains backbone blocks on images, one batch per step"
    if config.augmenting:
        return "sgd", "augmentation distorts the images of every step"
    return "lbfgs", None


def sgd_summary(config: TrainConfig, steps: int, reason: str | None) -> dict[str, Any]:
    """report.json's `head_fit` for a run trained by retrain.py's loop.

    Args:
        config: the run's settings.
        steps: the steps it ran.
        reason: why L-BFGS was not used although asked for, or None.
    """
    return {
        "method": "sgd",
        "requested": config.head_fit,
        "reason": reason,
        "steps": steps,
        "learning_rate": config.learning_rate,
        "lr_schedule": config.lr_schedule,
        "train_batch_size": config.train_batch_size,
    }


class LbfgsLoop(LoopBase):
    """The head fitted by full-batch L-BFGS, with the step loop's events, lines and scalars.

    Needs no TensorFlow: features, fit and scores are numpy and scipy, and the
    logs go through `Summaries`' own writers. After `train`, `head` is the
    fitted `SoftmaxHead` (its `kernel` and `bias` are a Keras `Dense`'s) and
    `summary` holds report.json's `head_fit`.

    Args:
        config: the run's settings (resolved).
        class_count: classes.
        data: the records, truth and features per split.
        should_stop: asked between iterations; True stops with `RunCancelled`.
        on_step: gets each step's event.
        echo: gets retrain.py's lines.
        progress: the L2 grid's progress (phase "train", one unit per fit). Defaults to None.
    """

    def __init__(
        self,
        config: TrainConfig,
        class_count: int,
        data: TrainingData,
        *,
        should_stop: Callable[[], bool],
        on_step: Callable[[dict[str, Any]], None],
        echo: Callable[[str], None],
        progress: ProgressCallback | None = None,
    ) -> None:
        super().__init__(
            config, data, should_stop=should_stop, on_step=on_step, echo=echo, progress=progress
        )
        self.class_count = class_count
        self.steps = 0
        self.summary: dict[str, Any] = {}
        self.head: SoftmaxHead | None = None
        self.latest: SoftmaxHead | None = None

    def train(self, summaries: Summaries) -> None:
        """Choose L2 on validation, then fit once more reporting every iteration as a step.

        Raises:
            RunCancelled: `should_stop` said so (`head` is then the best head so far).
        """
        start = time.monotonic()
        x, y = self.features["train"], self.truth["train"]
        validation = (self.features["validation"], self.truth["validation"])
        counts = np.bincount(y, minlength=self.class_count).tolist()
        weights = class_weight_vector(counts, self.config.class_weights)[y]
        cap = self.config.how_many_training_steps
        val_count = len(validation[1])
        tracker = ProgressTracker(
            "train", (len(L2_GRID) if val_count else 1) + 1, self._progress, unit="fits"
        )
        self._echo(
            f"Head fit: L-BFGS on {len(y)} cached feature vectors, L2 chosen on the validation "
            f"split (N={val_count})"
            if val_count
            else f"Head fit: L-BFGS on {len(y)} cached feature vectors (no validation split: L2 = default)"
        )

        def on_result(result: L2Result) -> None:
            self._echo(
                f"L2 = {result.l2:g}: validation accuracy = {result.validation_accuracy * 100:.1f}% "
                f"(N={val_count}), {result.iterations} iterations"
            )
            tracker.advance(1, l2=result.l2, validation_accuracy=result.validation_accuracy)

        try:
            chosen, table = choose_l2(
                (x, y), validation, self.class_count, sample_weights=weights,
                max_iterations=cap, on_result=on_result, should_stop=self._should_stop,
            )  # fmt: skip
            self.latest = chosen
            self._echo(f"Chosen L2 = {chosen.l2:g}")
            self.steps = max(1, chosen.iterations)
            final = self._fit_reporting_steps(chosen.l2, weights, summaries)
        except (FitStopped, RunCancelled) as stopped:
            self.head = self.latest or getattr(stopped, "best", None)
            raise RunCancelled from None
        tracker.advance(1)
        self.head = self.latest = final
        self.train_seconds = time.monotonic() - start
        self.summary = {
            "method": "lbfgs",
            "requested": self.config.head_fit,
            "l2": chosen.l2,
            "chosen_on": "validation" if val_count else "default",
            "l2_grid": [result.as_dict() for result in table],
            "iterations": final.iterations,
            "converged": final.converged,
            "seconds": round(self.train_seconds, 3),
        }

    def _fit_reporting_steps(self, l2: float, weights: np.ndarray, summaries: Summaries) -> SoftmaxHead:
        """The chosen strength's fit, each iteration a step event (sent one iteration late,
        so the last one is known to be last and gets its validation score)."""
        pending: list[tuple[Iteration, float]] = []
        start = time.monotonic()

        def on_iteration(iteration: Iteration) -> None:
            self.latest = iteration.head
            if pending:
                self._report(*pending.pop(), summaries, last=False)
            pending.append((iteration, time.monotonic() - start))

        head = fit_softmax(
            self.features["train"], self.truth["train"], self.class_count, l2=l2,
            sample_weights=weights, max_iterations=self.config.how_many_training_steps,
            on_iteration=on_iteration, should_stop=self._should_stop,
        )  # fmt: skip
        if pending:
            self._report(*pending.pop(), summaries, last=True)
        return head

    def _report(self, iteration: Iteration, elapsed: float, summaries: Summaries, *, last: bool) -> None:
        step = iteration.number
        self.steps = step if last else max(self.steps, step + 1)
        train_count = len(self.truth["train"])
        event = step_event(
            step, self.steps, iteration.train_accuracy, iteration.cross_entropy,
            round(iteration.learning_rate, 6), step * train_count, elapsed,
        )  # fmt: skip
        summaries.write_train_step(
            step, iteration.train_accuracy, iteration.cross_entropy, iteration.learning_rate
        )
        val_count = len(self.truth["validation"])
        if (step % self.config.eval_step_interval == 0 or step == 1 or last) and val_count:
            # the whole split, as the L2 was chosen on (cheap on features)
            accuracy, xent = iteration.head.score(self.features["validation"], self.truth["validation"])
            event["validation_accuracy"] = round(float(accuracy), 6)
            event["validation_cross_entropy"] = round(float(xent), 6)
            event["validation_count"] = val_count
            # the weight histograms show this iteration's layer
            summaries.write_validation(step, event, iteration.head.kernel, iteration.head.bias)
            for line in step_lines(event):
                self._echo(line)
        self.step = step
        self._on_step(event)

    def test_predictions(self) -> tuple[list[Any], np.ndarray, np.ndarray]:
        """Probabilities of the fitted head on the test split (or the sample `test_batch_size` asks for)."""
        assert self.head is not None, "train() first"
        count = len(self.truth["test"])
        rows = sample_rows(count, self.config.test_batch_size, int(self.config.seed or 0), 0)
        records = [self.splits["test"][i] for i in rows]
        if not len(rows):
            return [], np.zeros(0, np.int64), np.zeros((0, self.class_count), np.float32)
        return records, self.truth["test"][rows], self.head.probabilities(self.features["test"][rows])
