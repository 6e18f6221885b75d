"""Structured pruning of attention models: whole heads and head dimensions, fused and separate
q/k/v, any head count, with or without a class token; pruned models export to ONNX and agree
with PyTorch (``es.export`` checks it); what cannot be pruned safely says what to do."""

from __future__ import annotations

import pytest
import torch

import edgeslim as es
from edgeslim.errors import ConfigError
from edgeslim.graph import summarize
from edgeslim.measure.compute import compute
from tests.compress.attention_models import TinyViT
from tests.measure.helpers import export, random_data


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def prune(model, data, tmp_path, **settings):
    (candidate,) = es.compress(
        es.Candidate("base", model=model),
        data,
        [[{"prune": {"kind": "structured", **settings}}]],
        out_dir=tmp_path,
        show_progress=False,
    )
    return candidate


def heads_of(model: torch.nn.Module) -> list[int]:
    return [m.num_heads for m in model.modules() if hasattr(m, "num_heads")]


def macs(path) -> int:
    return compute(summarize(path))["macs"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("style", "heads", "cls_token"),
    [("timm", h, c) for h in (1, 2, 4, 8) for c in (True, False)]
    + [("separate", 2, True), ("separate", 8, False)],
)
def test_head_dimensions_prune_and_export(style, heads, cls_token, digits, tmp_path):
    model = TinyViT(style, heads, cls_token)
    before = params(model)
    candidate = prune(model, digits, tmp_path, ratio=0.5)  # exported, checked against PyTorch
    assert params(candidate.model) < 0.4 * before  # embedding, MLPs and head widths halved
    assert heads_of(candidate.model) == [heads, heads]  # every head kept, each narrower
    assert candidate.artifact.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("style", "heads"), [("timm", 2), ("timm", 4), ("timm", 8), ("separate", 4)]
)
def test_whole_heads_prune_and_nothing_else(style, heads, digits, tmp_path):
    model = TinyViT(style, heads, cls_token=True)
    candidate = prune(model, digits, tmp_path, head_ratio=0.5)
    assert heads_of(candidate.model) == [heads // 2, heads // 2]
    pruned = candidate.model.blocks[0]
    assert pruned.norm1.normalized_shape == (32,)  # the embedding is untouched
    assert pruned.mlp[0].out_features == 64  # and so are the MLPs
    (step,) = [s["prune"] for s in candidate.recipe if "prune" in s]
    assert step["result"]["attention"]["blocks.0.attn"] == {
        "heads": heads // 2,
        "head_dim": 32 // heads,
    }
    assert candidate.artifact.exists()


@pytest.mark.slow
def test_the_zoo_transformers_lose_heads_width_and_macs(digits, tmp_path):
    for name in ("vit", "mobilevit"):
        model = es.models.build(name, digits.spec)
        base = es.export(es.Candidate(name, model=model), digits, tmp_path)
        candidate = prune(model, digits, tmp_path, ratio=0.3, head_ratio=0.5)
        assert set(heads_of(candidate.model)) == {2}
        assert params(candidate.model) < 0.7 * params(model)
        assert macs(candidate.artifact) < 0.7 * macs(base.artifact)


@pytest.mark.parametrize("style", ["einops", "indexed"])
def test_a_split_torch_pruning_cannot_follow_is_a_clear_error_with_the_way_out(
    style, digits, tmp_path
):
    model = TinyViT(style, 4, cls_token=True)
    with pytest.raises(ConfigError, match=r"does not follow \.chunk/\.split.*prune\.ignore: \["):
        prune(model, digits, tmp_path, ratio=0.5)
    fused = [n for n, m in model.named_modules() if n.endswith(("to_qkv", "attn.qkv"))]
    candidate = prune(model, digits, tmp_path, ratio=0.5, ignore=fused)  # the way out works
    assert params(candidate.model) < 0.6 * params(model) and candidate.artifact.exists()


def test_a_block_that_fixes_its_width_cannot_lose_heads(digits, tmp_path):
    with pytest.raises(ConfigError, match="no longer runs.*use -1 in that reshape"):
        prune(TinyViT("fixed-width", 4, True), digits, tmp_path, head_ratio=0.5)


def test_an_unknown_head_count_is_refused_until_declared(digits, tmp_path):
    model = TinyViT("nameless", 4, True)
    with pytest.raises(ConfigError, match="'blocks.0.attn.qkv' looks like an attention projection"):
        prune(model, digits, tmp_path, ratio=0.5)
    declared = {f"blocks.{i}.attn.qkv": 4 for i in range(2)}
    candidate = prune(model, digits, tmp_path, ratio=0.5, num_heads=declared)
    assert candidate.model.blocks[0].attn.qkv.out_features == 48  # 4 heads of 4, not 8
    assert candidate.artifact.exists()
    with pytest.raises(ConfigError, match="prune.num_heads: 'mlp.0' is not"):
        prune(model, digits, tmp_path, ratio=0.5, num_heads={"mlp.0": 2})


def test_the_last_head_is_never_removed(digits, tmp_path):
    with pytest.raises(ConfigError, match="blocks.0.attn has 1 head"):
        prune(TinyViT("timm", 1, True), digits, tmp_path, head_ratio=0.5)


def test_attention_macs_include_both_matmuls(tmp_path):
    """One attention block on N tokens of width C, h heads of width d = C / h:
    qkv N*C*3C + QK^T h*N*N*d + attention x V h*N*N*d + proj N*C*C."""
    from edgeslim.models.vit import Attention

    tokens, width, heads = 10, 16, 4
    torch.manual_seed(0)
    model = Attention(width, heads, width // heads)
    path = export(model, random_data((tokens, width)), tmp_path / "attention.onnx")
    d = width // heads
    expected = (
        tokens * width * 3 * width
        + heads * tokens * tokens * d
        + heads * tokens * tokens * d
        + tokens * width * width
    )
    assert macs(path) == expected == 13440
