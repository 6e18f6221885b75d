"""Attention blocks, found in a user's model the way common repositories write them, so that
structured pruning can tell Torch-Pruning where the heads are.

A block is a module with a head count attribute (``num_heads``, ``heads``, ...) and either one
fused projection (``qkv``, ``to_qkv``, ...) or three (``q``/``k``/``v``, ``query``/``key``/
``value``, ...). Torch-Pruning prunes whole heads or head dimensions consistently when told
``num_heads`` per projection; afterwards the block's head count (and head width, where it keeps
one) must be updated, since its forward reads them. A Linear that looks like a fused projection
(out = 3 x in) in a module with no head count is reported before any pruning: Torch-Pruning
would couple its channels wrongly and fail deep inside (``IndexError: index 256 is out of
bounds``) or silently mix heads.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from edgeslim.errors import ConfigError

HEAD_COUNTS = ("num_heads", "heads", "n_heads", "n_head", "nhead", "num_attention_heads")
HEAD_WIDTHS = ("head_dim", "dim_head", "d_head", "attention_head_size", "d_k")
FUSED = ("qkv", "to_qkv", "qkv_proj", "c_attn", "Wqkv")
SEPARATE = (
    ("q", "k", "v"),
    ("to_q", "to_k", "to_v"),
    ("query", "key", "value"),
    ("q_proj", "k_proj", "v_proj"),
    ("wq", "wk", "wv"),
)


@dataclass
class AttentionBlock:
    name: str
    module: nn.Module
    heads_attr: str | None  # None: the heads were declared in prune.num_heads
    projections: dict[str, nn.Linear]  # qualified name -> the fused or the q, k, v Linears
    declared: int | None = None

    @property
    def heads(self) -> int:
        return self.declared or int(getattr(self.module, self.heads_attr))

    def update(self, num_heads: dict[nn.Module, int]) -> dict[str, int]:
        """Read the head count Torch-Pruning left; the block's forward reads these attributes."""
        first = next(iter(self.projections.values()))
        heads = num_heads.get(first, self.heads)
        if self.heads_attr:
            setattr(self.module, self.heads_attr, heads)
        else:
            self.declared = heads
        shape = self.shape()
        for attr in HEAD_WIDTHS:
            if isinstance(getattr(self.module, attr, None), int):
                setattr(self.module, attr, shape["head_dim"])
        return shape

    def shape(self) -> dict[str, int]:
        first = next(iter(self.projections.values()))
        width = first.out_features // (3 if len(self.projections) == 1 else 1)
        return {"heads": self.heads, "head_dim": width // self.heads}


def find_attention(
    model: nn.Module, declared: dict[str, int] | None = None
) -> list[AttentionBlock]:
    """Every attention block of ``model``; ``declared`` (projection name -> heads) covers
    blocks whose head count has a name this does not know."""
    declared = dict(declared or {})
    blocks = []
    for name, module in model.named_modules():
        projections = projections_of(module, name)
        if not projections:
            continue
        heads_attr = next(
            (a for a in HEAD_COUNTS if isinstance(getattr(module, a, None), int)), None
        )
        given = [declared.pop(p) for p in list(projections) if p in declared]
        if heads_attr is not None or given:
            blocks.append(
                AttentionBlock(name, module, heads_attr, projections, given[0] if given else None)
            )
    if declared:
        raise ConfigError(
            f"prune.num_heads: {', '.join(map(repr, declared))} is not the q/k/v or fused qkv "
            "projection of an attention block (a Linear named qkv, to_qkv, q/k/v, query/key/value "
            "or q_proj/k_proj/v_proj)"
        )
    return blocks


def projections_of(module: nn.Module, name: str) -> dict[str, nn.Linear]:
    prefix = f"{name}." if name else ""
    for attr in FUSED:
        layer = getattr(module, attr, None)
        if isinstance(layer, nn.Linear):
            return {prefix + attr: layer}
    for trio in SEPARATE:
        layers = [getattr(module, attr, None) for attr in trio]
        if all(isinstance(layer, nn.Linear) for layer in layers):
            return {prefix + attr: layer for attr, layer in zip(trio, layers, strict=True)}
    return {}


def check_unrecognised(model: nn.Module, blocks: list[AttentionBlock], ignored: set[str]) -> None:
    """A fused-looking projection outside any known block is an error now, with what to do."""
    known = {p for block in blocks for p in block.projections}
    for name, layer in model.named_modules():
        if not isinstance(layer, nn.Linear) or name in known or name in ignored:
            continue
        looks_fused = layer.out_features == 3 * layer.in_features
        named_like = name.rsplit(".", 1)[-1] in FUSED or any(
            name.rsplit(".", 1)[-1] in trio for trio in SEPARATE
        )
        if looks_fused or named_like:
            raise ConfigError(
                f"prune: layer {name!r} looks like an attention projection, but its block "
                f"has no head count edgeslim knows ({', '.join(HEAD_COUNTS)}); pruning it "
                "would mix heads. Give its heads (prune.num_heads: "
                f"{{{name}: N}}), or keep it whole (prune.ignore: [{name}])"
            )


def num_heads_map(blocks: list[AttentionBlock]) -> dict[nn.Module, int]:
    """Torch-Pruning's ``num_heads``: each projection and its block's head count."""
    return {layer: block.heads for block in blocks for layer in block.projections.values()}
