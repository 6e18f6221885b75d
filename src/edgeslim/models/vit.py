"""Attention models for small images: a Vision Transformer and a MobileViT-like hybrid.

Written the way common repositories write them (timm's ``Attention``: one fused ``qkv`` Linear
split into heads), with one difference that matters for compression: the head count and head
width are read from the module at call time (``reshape(B, N, 3, self.num_heads, -1)``), never
fixed from the input's width, so structured pruning can remove whole heads or head dimensions.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeslim.data.bundle import DataSpec
from edgeslim.errors import ModelLoadError
from edgeslim.models.registry import channels, image_shape, register_model, stride_for

# GELU is the transformers' usual choice; TFLite Micro has no GELU kernel, so an MCU ViT uses ReLU
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, head_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * num_heads * head_dim)
        self.proj = nn.Linear(num_heads * head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attention = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(b, n, -1))


class Block(nn.Module):
    """Pre-norm transformer block: attention and an MLP, each around a residual."""

    def __init__(
        self, dim: int, num_heads: int, head_dim: int, mlp_ratio: float, act: str = "gelu"
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = channels(dim, mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), ACTIVATIONS[act](), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(
        self,
        in_channels: int,
        size: int,
        classes: int,
        patch: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        cls_token: bool,
        act: str,
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        tokens = (size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + int(cls_token), dim) * 0.02)
        head_dim = max(1, dim // num_heads)
        self.blocks = nn.Sequential(
            *(Block(dim, num_heads, head_dim, mlp_ratio, act) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, tokens, dim)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.norm(self.blocks(x + self.pos_embed))
        return self.head(x[:, 0] if self.cls_token is not None else x.mean(dim=1))


@register_model("vit")
def vit(
    spec: DataSpec,
    width: float = 1.0,
    depth: float = 1.0,
    num_heads: int = 4,
    cls_token: bool = True,
    act: str = "gelu",
) -> nn.Module:
    """ViT with patch 4 (patch 2 on 8x8 digits), 64 wide, 4 blocks of 4 heads, MLP 2x; width
    scales the embedding (head count kept, heads narrower), depth the block count."""
    c, h, _ = image_shape(spec, "vit")
    patch = 4 if h >= 16 else 2
    return ViT(
        c,
        h,
        spec.num_classes,
        patch=patch,
        dim=channels(64, width),
        depth=channels(4, depth),
        num_heads=num_heads,
        mlp_ratio=2.0,
        cls_token=cls_token,
        act=checked_activation(act),
    )


def checked_activation(act: str) -> str:
    if act not in ACTIVATIONS:
        raise ModelLoadError(f"act: {act!r} is not one of {sorted(ACTIVATIONS)}")
    return act


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand 1x1, depthwise 3x3, project 1x1."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int = 2) -> None:
        super().__init__()
        hidden = c_in * expand
        self.residual = stride == 1 and c_in == c_out
        self.body = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.SiLU(),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileViTBlock(nn.Module):
    """Local 3x3 convolution, then global attention over the feature map's positions (each
    pixel a token), then a fusion convolution with the block's input."""

    def __init__(self, c: int, dim: int, depth: int, num_heads: int, act: str) -> None:
        super().__init__()
        self.local = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.SiLU()
        )
        self.to_tokens = nn.Conv2d(c, dim, 1, bias=False)
        head_dim = max(1, dim // num_heads)
        self.transformer = nn.Sequential(
            *(Block(dim, num_heads, head_dim, 2.0, act) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim)
        self.from_tokens = nn.Conv2d(dim, c, 1, bias=False)
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.SiLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        y = self.to_tokens(self.local(x))
        tokens = self.norm(self.transformer(y.flatten(2).transpose(1, 2)))
        y = self.from_tokens(tokens.transpose(1, 2).reshape(b, -1, h, w))
        return self.fuse(torch.cat([x, y], dim=1))


@register_model("mobilevit")
def mobilevit(
    spec: DataSpec, width: float = 1.0, depth: float = 1.0, num_heads: int = 4, act: str = "gelu"
) -> nn.Module:
    """MobileViT-like hybrid: a convolutional stem and MobileNetV2 blocks down to 7x7 (on
    28x28), two attention blocks over that map, global pooling. Width scales every channel
    count, depth the attention blocks."""
    c, h, _ = image_shape(spec, "mobilevit")
    c1, c2, dim = channels(16, width), channels(32, width), channels(48, width)
    s1 = stride_for(h, 2)
    s2 = stride_for(h // s1, 2)
    return nn.Sequential(
        nn.Conv2d(c, c1, 3, s1, 1, bias=False),
        nn.BatchNorm2d(c1),
        nn.SiLU(),
        InvertedResidual(c1, c1, 1),
        InvertedResidual(c1, c2, s2),
        MobileViTBlock(c2, dim, channels(2, depth), num_heads, checked_activation(act)),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c2, spec.num_classes),
    )
