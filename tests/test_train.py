import torch

import edgeslim as es
from edgeslim.train import fit, predict


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
    scores = [h["val_accuracy"] for h in result.history]
    assert len(scores) == result.epochs_run
    assert result.best_epoch == scores.index(max(scores)) + 1  # the first best epoch
    assert es.evaluate(model, digits.val) == result.best_val == max(scores)  # its weights back


def test_early_stopping_fires_after_patience_epochs_without_gain(digits):
    """A learning rate too small to change a prediction: the validation figure never beats
    epoch 1, so training stops at epoch 1 + patience, not at the 40 asked for."""
    model = es.models.build("mlp", digits.spec)
    result = fit(model, digits, epochs=40, patience=2, lr=1e-12, show_progress=False)
    assert (result.best_epoch, result.epochs_run) == (1, 3)


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


def test_shift_and_flip_move_the_images_and_nothing_else():
    from edgeslim.train import augment_batch

    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    g = torch.Generator().manual_seed(0)
    same = augment_batch(x, 0, False, g)
    assert torch.equal(same, x)
    moved = augment_batch(x, 2, False, torch.Generator().manual_seed(1))
    assert moved.shape == x.shape and not torch.equal(moved, x)
    for image, original in zip(moved, x, strict=True):
        # a shift of at most 2 pixels: the original image's centre lies somewhere in it
        centre = original[0, 2, 2]
        assert (image == centre).any()
        assert set(image.unique().tolist()) <= set(original.unique().tolist())
    flips = [augment_batch(x, 0, True, torch.Generator().manual_seed(s)) for s in range(8)]
    for flipped in flips:
        for image, original in zip(flipped, x, strict=True):
            assert torch.equal(image, original) or torch.equal(image, original.flip(-1))
    assert any(not torch.equal(f, x) for f in flips) and any(torch.equal(f, x) for f in flips)


def test_training_options_take_effect(digits):
    from edgeslim.errors import ConfigError
    from edgeslim.train import make_scheduler

    def confidence(**options):
        model = es.models.build("small-cnn", digits.spec)
        fit(model, digits, epochs=3, patience=None, show_progress=False, **options)
        probs = torch.softmax(torch.from_numpy(predict(model, digits.test.x)), 1)
        return float(probs.max(1).values.mean()), es.evaluate(model, digits.test)

    sharp, _ = confidence()
    smooth, accuracy = confidence(label_smoothing=0.2, shift=1, schedule="cosine")
    assert smooth < sharp - 0.05  # label smoothing: less certain, still accurate
    assert accuracy >= 0.9
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    cosine = make_scheduler(optimizer, "cosine", 0.1, 10)
    for _ in range(10):
        optimizer.step()
        cosine.step()
    assert optimizer.param_groups[0]["lr"] < 1e-6
    flat = es.data.load("digits")
    vectors = es.data.Dataset(
        es.data.DataSpec((64,), 10),
        *(es.data.Split(s.x.reshape(len(s.x), -1), s.y) for s in (flat.train, flat.val, flat.test)),
    )
    try:
        fit(es.models.build("mlp", vectors.spec), vectors, epochs=1, shift=2, show_progress=False)
    except ConfigError as exc:
        assert "shift and flip move images" in str(exc)
    else:
        raise AssertionError("shift on feature vectors must be refused")


def test_device_auto_falls_back_to_the_cpu_and_cuda_is_checked(digits):
    import pytest

    from edgeslim.errors import ConfigError
    from edgeslim.train import training_device

    model = es.models.build("mlp", digits.spec)
    fit(model, digits, epochs=1, device="auto", show_progress=False)
    assert all(p.device.type == "cpu" for p in model.parameters())  # back on the CPU
    if torch.cuda.is_available():
        assert training_device("auto").type == "cuda"
    else:
        assert training_device("auto").type == "cpu"
        with pytest.raises(ConfigError, match="torch sees no GPU"):
            es.compress(es.Candidate("m", model=model), digits, [[{"finetune": {}}]], device="cuda")


def test_training_says_each_epoch_in_one_plain_line_when_not_on_a_terminal(digits, capsys):
    """Output captured, as in a CI log: one line per epoch with the loss, the validation figure
    and the time left; an early stop says so; nothing when progress is off."""
    model = es.models.build("mlp", digits.spec)
    fit(model, digits, epochs=3, patience=None, desc="train mlp")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[1] for line in lines] == [" epoch 1/3", " epoch 2/3", " epoch 3/3"]
    assert lines[0].startswith("train mlp: epoch 1/3: loss ") and "val_accuracy 0." in lines[0]
    assert lines[0].endswith(" left") and "(best " in lines[0]
    assert not lines[-1].endswith(" left")  # nothing left after the last epoch
    result = fit(model, digits, epochs=30, patience=1, lr=1e-6, desc="tune")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == result.epochs_run < 30
    assert "stops early: no better for 1 epoch(s)" in lines[-1] and not lines[-1].endswith(" left")
    fit(model, digits, epochs=1, show_progress=False)
    assert capsys.readouterr().out == ""


def test_the_time_left_is_the_mean_epoch_so_far_times_the_epochs_to_go():
    from edgeslim.progress import Bar, duration

    assert [duration(s) for s in (0.4, 42, 185, 3720)] == ["0s", "42s", "3m 05s", "1h 02m"]
    bar = Bar(None, None, ("train x", "epoch", 12))
    bar._done = 3
    assert bar.line("loss 0.5", 30.0) == "train x: epoch 3/12: loss 0.5; 30s, about 1m 30s left"
    assert bar.line("", 30.0, last=True) == "train x: epoch 3/12: 30s"
