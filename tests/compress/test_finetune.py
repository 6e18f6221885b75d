import pytest

import edgeslim as es

pytestmark = pytest.mark.slow  # each test here takes over 4 s on 2 cores


def test_activation_penalty_raises_measured_activation_sparsity(trained_small_cnn, digits, quick):
    plain, sparse = es.compress(
        trained_small_cnn,
        digits,
        [
            [{"finetune": {"epochs": 5, "lr": 3e-3}}],
            [{"finetune": {"epochs": 5, "lr": 3e-3, "activation_l1": 2.0}}],
        ],
        show_progress=False,
    )
    before = es.measure(plain, digits, quick)
    after = es.measure(sparse, digits, quick)
    assert after["activation_sparsity"] > before["activation_sparsity"] + 0.08
    assert after["accuracy"] >= before["accuracy"] - 0.01
    assert sparse.step("finetune")["activation_l1"] == 2.0
