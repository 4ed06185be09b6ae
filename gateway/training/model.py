"""The item detector network: a small anchor-free centre-point detector in plain torch.

Why this shape: counting needs one peak per item, and a centre heatmap with peak extraction
(CenterNet / TTFNet) gives exactly that with no anchors and no tuned NMS inside the model. The
backbone is a MobileNetV2-like stack of inverted residual blocks, narrow on purpose: a 640x640
tile must stay well under 40 ms on two CPU cores, so the expensive high-resolution stages are
kept thin and the wide channels live at stride 16 and 32 where there are few positions.

The exported graph (see :class:`ExportWrapper`) takes raw uint8 BGR tiles ``[N, H, W, 3]``
and returns ``[N, K, 5]`` rows ``(x0, y0, x1, y1, score)`` in tile pixels: normalisation and
peak extraction (3x3 max-pool + top-K) live inside the ONNX file, so Triton serves it as is.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

STRIDE = 4
MAX_DETECTIONS = 200
# Distances to the four box sides are predicted as exp(x) * BOX_SCALE pixels: items range from
# ~12 px to a whole tile, and the log parameterisation keeps that range well conditioned.
BOX_SCALE = 16.0
# ImageNet-style per-channel statistics (BGR order, 0..255 scale); any fixed values work since
# the network is trained from scratch, these just keep the first layer's input centred.
MEAN_BGR = (104.0, 116.0, 124.0)
STD_BGR = (57.0, 57.0, 58.0)


def _conv_bn(cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True):
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 project, residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(cin, hidden))
        layers += [
            _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            _conv_bn(hidden, cout, act=False),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def _stage(cin: int, cout: int, n: int, stride: int, expand: int) -> nn.Sequential:
    blocks = [InvertedResidual(cin, cout, stride, expand)]
    blocks += [InvertedResidual(cout, cout, 1, expand) for _ in range(n - 1)]
    return nn.Sequential(*blocks)


class _SepConv(nn.Module):
    """Depthwise 3x3 + pointwise 1x1: the cheapest 3x3 receptive field at full channel width."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.dw = _conv_bn(cin, cin, 3, groups=cin)
        self.pw = _conv_bn(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class ItemDetector(nn.Module):
    """Backbone to stride 32, top-down FPN back to stride 4, heatmap + box-distance heads.

    ``forward`` takes a float tensor ``[N, 3, H, W]`` already normalised (see
    :func:`normalise`) and returns ``(heat_logits [N,1,H/4,W/4], sides [N,4,H/4,W/4])`` with
    ``sides`` the (left, top, right, bottom) distances in input pixels.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()

        def c(n: int) -> int:
            return max(8, int(round(n * width / 8)) * 8)

        self.stem = _conv_bn(3, c(16), 3, 2)
        self.s4 = nn.Sequential(
            InvertedResidual(c(16), c(24), 2, 1), InvertedResidual(c(24), c(24), 1, 3)
        )
        self.s8 = _stage(c(24), c(40), 3, 2, 4)
        self.s16 = _stage(c(40), c(80), 3, 2, 4)
        self.s32 = _stage(c(80), c(128), 2, 2, 4)
        f = c(48)
        self.lat32 = _conv_bn(c(128), f)
        self.lat16 = _conv_bn(c(80), f)
        self.lat8 = _conv_bn(c(40), f)
        self.lat4 = _conv_bn(c(24), c(32))
        self.smooth16 = _SepConv(f, f)
        self.smooth8 = _SepConv(f, c(32))
        self.smooth4 = _SepConv(c(32), c(32))
        h = c(32)
        self.heat = nn.Sequential(_SepConv(h, h), nn.Conv2d(h, 1, 1))
        self.box = nn.Sequential(_SepConv(h, h), nn.Conv2d(h, 4, 1))
        # Focal-loss prior: start with every cell ~1% "item centre" so early losses are sane.
        nn.init.constant_(self.heat[-1].bias, -4.6)
        nn.init.normal_(self.box[-1].weight, std=0.01)
        nn.init.constant_(self.box[-1].bias, 1.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x4 = self.s4(self.stem(x))
        x8 = self.s8(x4)
        x16 = self.s16(x8)
        x32 = self.s32(x16)
        p = self.lat32(x32)
        p = self.smooth16(self.lat16(x16) + F.interpolate(p, scale_factor=2.0, mode="nearest"))
        p = self.smooth8(self.lat8(x8) + F.interpolate(p, scale_factor=2.0, mode="nearest"))
        p = self.smooth4(self.lat4(x4) + F.interpolate(p, scale_factor=2.0, mode="nearest"))
        heat = self.heat(p)
        sides = torch.exp(self.box(p).clamp(-6.0, 6.0)) * BOX_SCALE
        return heat, sides


def normalise(images_bhwc_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 BGR ``[N,H,W,3]`` -> normalised float ``[N,3,H,W]`` (the same op as in ONNX)."""
    x = images_bhwc_uint8.permute(0, 3, 1, 2).float()
    mean = torch.tensor(MEAN_BGR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD_BGR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def decode(
    heat_logits: torch.Tensor, sides: torch.Tensor, k: int = MAX_DETECTIONS
) -> torch.Tensor:
    """Peaks of the heatmap -> ``[N, k, 5]`` boxes ``(x0, y0, x1, y1, score)`` in input pixels.

    A cell is a peak when it equals the max of its 3x3 neighbourhood; the top ``k`` peaks by
    score are kept (the caller thresholds). Rows beyond the real peaks carry tiny scores, which
    callers treat the same as padding.
    """
    n, _, h, w = heat_logits.shape
    heat = torch.sigmoid(heat_logits)
    peaks = F.max_pool2d(heat, 3, stride=1, padding=1)
    heat = heat * (peaks == heat).to(heat.dtype)
    scores, idx = torch.topk(heat.reshape(n, h * w), k, dim=1)
    ys = torch.div(idx, w, rounding_mode="floor").to(heat.dtype)
    xs = (idx - torch.div(idx, w, rounding_mode="floor") * w).to(heat.dtype)
    cx = (xs + 0.5) * STRIDE
    cy = (ys + 0.5) * STRIDE
    d = torch.gather(sides.reshape(n, 4, h * w), 2, idx.unsqueeze(1).expand(n, 4, k))
    boxes = torch.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], dim=2)
    size = torch.tensor([w * STRIDE, h * STRIDE, w * STRIDE, h * STRIDE], dtype=heat.dtype,
                        device=heat.device)
    boxes = torch.minimum(torch.clamp(boxes, min=0.0), size)
    return torch.cat([boxes, scores.unsqueeze(2)], dim=2)


class ExportWrapper(nn.Module):
    """What goes into ONNX: uint8 BGR tiles in, ``[N, k, 5]`` detections out."""

    def __init__(self, model: ItemDetector, k: int = MAX_DETECTIONS) -> None:
        super().__init__()
        self.model = model
        self.k = k

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        heat, sides = self.model(normalise(images))
        return decode(heat, sides, self.k)
