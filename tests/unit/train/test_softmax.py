"""engine.train.softmax: the L-BFGS softmax fit converges to the reference optimum and picks L2 on validation."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.errors import StudioError
from engine.train.softmax import DEFAULT_L2, STD_FLOOR, FitStopped, choose_l2, fit_softmax
from tests.support.features import blobs


# newton-cg (the precise reference) warns when its line search hits rounding near the optimum
@pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::scipy.optimize._linesearch.LineSearchWarning"
)
def test_fit_reaches_the_optimum_of_a_reference_multinomial_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = blobs(400)
    l2 = 1e-2
    head = fit_softmax(x, y, 3, l2=l2)
    assert head.converged and 0 < head.iterations < 1000
    # The same problem for scikit-learn: C * sum(loss) + |W|^2 / 2 on the same standardised
    # features is the mean loss + l2/2 |W|^2 with C = 1 / (l2 * n); its intercept is not penalised.
    std = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.maximum(std, STD_FLOOR * std.max())
    reference = LogisticRegression(C=1 / (l2 * len(y)), solver="newton-cg", tol=1e-10).fit(z, y)
    np.testing.assert_allclose(head.probabilities(x), reference.predict_proba(z), atol=2e-4)


def test_iterations_are_reported_in_order_and_the_last_is_the_result() -> None:
    x, y = blobs(200, seed=1)
    seen = []
    head = fit_softmax(x, y, 3, l2=1e-3, on_iteration=seen.append)
    assert [it.number for it in seen] == list(range(1, head.iterations + 1))
    assert seen[-1].cross_entropy < seen[0].cross_entropy
    assert all(it.learning_rate > 0 for it in seen)
    np.testing.assert_allclose(seen[-1].head.kernel, head.kernel, atol=1e-6)
    accuracy, cross_entropy = head.score(x, y)
    assert accuracy == pytest.approx(seen[-1].train_accuracy)
    assert cross_entropy == pytest.approx(seen[-1].cross_entropy, rel=1e-4)


def test_a_row_of_weight_two_counts_as_that_row_twice() -> None:
    x, y = blobs(150, seed=2)
    weights = np.where(y == 0, 2.0, 1.0)
    weighted = fit_softmax(x, y, 3, l2=1e-2, sample_weights=weights)
    twice = np.concatenate([np.arange(len(y)), np.flatnonzero(y == 0)])
    duplicated = fit_softmax(x[twice], y[twice], 3, l2=1e-2)
    np.testing.assert_allclose(weighted.probabilities(x), duplicated.probabilities(x), atol=1e-3)


def test_l2_is_chosen_on_the_validation_split_not_the_training_one() -> None:
    x, y = blobs(300, seed=3, spread=0.5)
    vx, vy = x[:100], y[:100]
    # Validation labels that agree with training reward the fit that learned them ...
    learned, table = choose_l2((x, y), (vx, vy), 3, grid=(1e-5, 1e3))
    assert learned.l2 == 1e-5
    assert [r.l2 for r in table] == [1e-5, 1e3]
    assert table[0].validation_accuracy > table[1].validation_accuracy
    # ... labels shifted by one class punish it: the penalty that learned nothing wins.
    shifted, table = choose_l2((x, y), (vx, (vy + 1) % 3), 3, grid=(1e-5, 1e3))
    assert shifted.l2 == 1e3
    assert table[1].validation_accuracy > table[0].validation_accuracy


def test_ties_go_to_the_lower_validation_cross_entropy() -> None:
    x, y = blobs(300, seed=4, spread=0.3)  # easy: every strength gets the validation rows right
    head, table = choose_l2((x, y), (x[:60], y[:60]), 3, grid=(1e-4, 1e-2, 1e-1))
    best = min(table, key=lambda r: (-r.validation_accuracy, r.validation_cross_entropy))
    assert head.l2 == best.l2
    assert len({r.validation_accuracy for r in table}) == 1


def test_without_validation_rows_the_default_strength_is_fitted_alone() -> None:
    x, y = blobs(100, seed=5)
    head, table = choose_l2((x, y), (x[:0], y[:0]), 3)
    assert head.l2 == DEFAULT_L2 and [r.l2 for r in table] == [DEFAULT_L2]


def test_should_stop_ends_the_fit_with_fit_stopped() -> None:
    x, y = blobs(100, seed=6)
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(FitStopped):
        choose_l2((x, y), (x, y), 3, should_stop=stop)
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("labels", "message"),
    [(np.zeros(5, np.int64), "do not match"), (np.full(10, 7), "allowed 0..2")],
)
def test_bad_labels_are_refused_with_what_is_allowed(labels: np.ndarray, message: str) -> None:
    with pytest.raises(StudioError, match=message):
        fit_softmax(np.zeros((10, 4), np.float32), labels, 3)


def test_a_near_constant_feature_does_not_blow_up_the_layer() -> None:
    # ReLU6 backbones give features that are almost always 0: scaled to unit spread, their
    # weights (folded back into the layer) reached thousands, which int8 quantization flattened.
    x, y = blobs(300, seed=7)
    x[:, 1] = np.random.default_rng(7).normal(0, 1e-5, len(y))
    head = fit_softmax(x, y, 3, l2=1e-5)
    assert np.abs(head.kernel[1]).max() < np.abs(head.kernel).max()
    assert np.abs(head.kernel).max() < 50
