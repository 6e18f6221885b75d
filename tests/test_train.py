import torch

import edgeslim as es
from edgeslim.train import fit


def test_small_cnn_reaches_97_percent_on_digits(trained_small_cnn, digits):
    # bench/demo timing shows this takes a few seconds; here we check the accuracy only
    assert es.evaluate(trained_small_cnn.model, digits.test) >= 0.97
    assert trained_small_cnn.recipe[0]["train"]["epochs"] == 15


def test_training_is_deterministic_for_a_seed(digits):
    def weights(seed):
        model = es.models.build("mlp", digits.spec)
        torch.manual_seed(123)  # same init, so only the training seed differs
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.05)
        fit(model, digits, epochs=2, seed=seed, show_progress=False)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(weights(0), weights(0))
    assert not torch.equal(weights(0), weights(1))


def test_early_stopping_restores_the_best_epoch(digits):
    model = es.models.build("mlp", digits.spec)
    result = fit(model, digits, epochs=40, patience=2, lr=0.05, show_progress=False)
    assert result.epochs_run <= 40
    assert result.epochs_run - result.best_epoch <= 2 or result.epochs_run == 40
    assert es.evaluate(model, digits.val) == result.best_val_accuracy


def test_teacher_hook_passes_teacher_logits(digits):
    teacher = es.models.build("mlp", digits.spec).eval()
    seen = []

    def loss(logits, targets, teacher_logits):
        seen.append(teacher_logits is not None and teacher_logits.shape == logits.shape)
        return torch.nn.functional.cross_entropy(logits, targets)

    fit(
        es.models.build("mlp", digits.spec),
        digits,
        epochs=1,
        teacher=teacher,
        loss=loss,
        show_progress=False,
    )
    assert seen and all(seen)
