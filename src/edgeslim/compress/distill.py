"""Knowledge distillation (Hinton et al. 2015), optionally with feature hints (FitNets).

The loss is the task's: for a classifier
alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE; for a
detector the teacher's softened heatmaps and its box regression (``edgeslim.tasks.detection``).
The teacher is the recipe's starting model unless one is named; the student is the current
model (so distillation doubles as the fine-tuning after pruning) or a fresh model: a zoo model,
e.g. a narrower copy (``student: {model: small-cnn, width: 0.5}``), or any model reference a
``model:`` accepts (``student: {model: mynet:small}``), built from the student's seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from edgeslim.compress.finetune import tune
from edgeslim.compress.registry import StepContext, technique
from edgeslim.data.bundle import Dataset
from edgeslim.errors import ConfigError, ModelLoadError
from edgeslim.models import ZOO, build, load_model
from edgeslim.tasks import task_of


class Student(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(
        description="a zoo name, module:function, file.py:function, or a TorchScript file",
        json_schema_extra={"reference": "model"},  # found as the experiment's model is
    )
    width: float = Field(1.0, gt=0, description="channel multiplier (zoo models)")
    depth: float | None = Field(None, gt=0, description="block count multiplier (zoo ViTs)")
    seed: int = 0


class DistillSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(5, ge=0)
    lr: float = Field(1e-3, gt=0)
    temperature: float | None = Field(
        None, gt=0, description="default: the task's (4 for a classifier, 1 for a detector)"
    )
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the distillation term")
    teacher: str = Field(
        "base",
        description="'base', a zoo name or module:function with teacher_weights, or a "
        "TorchScript/.pt2 file",
        json_schema_extra={"reference": "model", "words": ["base"]},
    )
    teacher_weights: str | None = Field(None, json_schema_extra={"reference": "file"})
    student: Student | None = None
    hints: list[tuple[str, str]] = Field([], description="(student layer, teacher layer) pairs")
    hint_weight: float = Field(1.0, ge=0)
    keep_sparsity: bool = True
    shift: int = Field(0, ge=0, description="random shift of training images, in pixels")
    flip: bool = Field(False, description="random left-right flips (where classes allow it)")
    seed: int = 0


def load_teacher(s: DistillSettings, base_model: nn.Module | None, data: Dataset) -> nn.Module:
    if s.teacher == "base":
        if base_model is None:
            raise ConfigError("distill.teacher: 'base' needs a PyTorch base model")
        return base_model
    try:
        teacher = load_model(s.teacher, data.spec, s.teacher_weights)
    except ModelLoadError as exc:
        raise ModelLoadError(f"distill.teacher: {exc}") from exc
    if not isinstance(teacher, nn.Module):
        raise ConfigError(f"distill.teacher: {s.teacher} is not a PyTorch model")
    return teacher


def output_channels(model: nn.Module, data: Dataset) -> int:
    with torch.no_grad():
        return int(model.eval()(torch.from_numpy(data.val.x[:2])).shape[1])


def build_student(s: DistillSettings, current: nn.Module, data: Dataset) -> nn.Module:
    """The current model, or a fresh one built from the student's seed: a zoo model (scaled by
    width and depth) or any model a ``model:`` reference names."""
    if s.student is None:
        return current
    student = s.student
    if student.model in ZOO:
        depth = {} if student.depth is None else {"depth": student.depth}
        return build(student.model, data.spec, seed=student.seed, width=student.width, **depth)
    if student.width != 1.0 or student.depth is not None:
        raise ConfigError(
            f"distill.student: width and depth scale a zoo model; {student.model} is your own, "
            "so build the size you want in its function (or name another function)"
        )
    try:
        model = load_model(student.model, data.spec, seed=student.seed)
    except ModelLoadError as exc:
        raise ModelLoadError(f"distill.student.model: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"distill.student.model: {student.model} is an ONNX file; a student is trained, so "
            "give a PyTorch model (a zoo name, module:function or file.py:function)"
        )
    return model


def check(model: nn.Module, s: DistillSettings, data: Dataset) -> None:
    teacher = load_teacher(s, model, data)
    student = build_student(s, model, data)
    t_out, s_out = output_channels(teacher, data), output_channels(student, data)
    if t_out != s_out:
        raise ConfigError(
            f"distill.teacher outputs {t_out} scores per sample (or cell) but the student "
            f"outputs {s_out}; both must predict the same classes the same way"
        )
    for student_layer, teacher_layer in s.hints:
        for net, name, who in (
            (student, student_layer, "student"),
            (teacher, teacher_layer, "teacher"),
        ):
            if name not in dict(net.named_modules()):
                raise ConfigError(f"distill.hints: the {who} has no layer {name!r}")


class Hints:
    """Feature-matching terms: MSE between adapted student and teacher layer outputs."""

    def __init__(
        self, student: nn.Module, teacher: nn.Module, pairs, data: Dataset, weight: float
    ) -> None:
        self.weight, self.features = weight, {}
        s_mods, t_mods = dict(student.named_modules()), dict(teacher.named_modules())
        self.handles = []
        for i, (s_name, t_name) in enumerate(pairs):
            self.handles.append(s_mods[s_name].register_forward_hook(self.keeper(("s", i))))
            self.handles.append(t_mods[t_name].register_forward_hook(self.keeper(("t", i))))
        with torch.no_grad():
            x = torch.from_numpy(data.val.x[:2])
            student.eval()(x)
            teacher.eval()(x)
        self.adapters = nn.ModuleList()
        for i, (s_name, t_name) in enumerate(pairs):
            s_out, t_out = self.features[("s", i)], self.features[("t", i)]
            if s_out.dim() == 4:  # feature maps: a 1x1 convolution across channels
                self.adapters.append(nn.Conv2d(s_out.shape[1], t_out.shape[1], 1))
                continue
            if s_out.dim() == 3 and s_out.shape[1] != t_out.shape[1]:
                raise ConfigError(
                    f"distill.hints: {s_name} gives {s_out.shape[1]} tokens but {t_name} gives "
                    f"{t_out.shape[1]}; token hints need the same tokens (patch size)"
                )
            # features or tokens (batch, tokens, width): a linear map of the last dimension
            self.adapters.append(nn.Linear(s_out.shape[-1], t_out.shape[-1]))
        self.features.clear()

    def keeper(self, key):
        def keep(_module, _inputs, output):
            self.features[key] = output

        return keep

    def __call__(self, _model: nn.Module, _x: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for i, adapter in enumerate(self.adapters):
            s_out, t_out = adapter(self.features[("s", i)]), self.features[("t", i)].detach()
            if s_out.dim() == 4 and s_out.shape[-2:] != t_out.shape[-2:]:
                s_out = F.adaptive_avg_pool2d(s_out, t_out.shape[-2:])
            total = total + F.mse_loss(s_out, t_out)
        self.features.clear()
        return self.weight * total

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@technique("distill", DistillSettings, check=check)
def apply(model: nn.Module, data: Dataset, s: DistillSettings, ctx: StepContext) -> dict:
    teacher = load_teacher(s, ctx.base.model if ctx.base is not None else None, data)
    student = build_student(s, model, data)
    hints = Hints(student, teacher, s.hints, data, s.hint_weight) if s.hints else None
    task = task_of(data.spec)
    temperature = s.temperature or task.temperature
    try:
        result = tune(
            student,
            data,
            ctx,
            epochs=s.epochs,
            lr=s.lr,
            desc="distill",
            keep_sparsity=s.keep_sparsity,
            seed=s.seed,
            shift=s.shift,
            flip=s.flip,
            teacher=teacher,
            loss=task.distill_loss(temperature, s.alpha),
            regularizer=hints,
            # the hint adapters train with the student and are dropped afterwards
            extra_parameters=hints.adapters.parameters() if hints else (),
        )
    finally:
        if hints is not None:
            hints.remove()
    info = {**result.summary(), "temperature": temperature}
    if student is not model:
        info["model"] = student
    return info
