"""Sprites for the synthetic scenes: product labels, cartons, boxes, bottles, cans, bags.

A sprite is drawn once per SKU and scene and pasted for every facing of that SKU, because
real bays hold identical case packs and because pasting is far cheaper than drawing.
Boxes of the codes and text lines on a sprite are kept so the scene can report them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from gateway.training.scene_draw import (
    code_size,
    draw_text,
    fit_cap,
    paste,
    render_code,
    solid,
    text_mask,
)

IntBox = tuple[int, int, int, int]

BRANDS = ("NORDPACK", "ACME", "VERDA", "PROLINE", "KALMAR", "SOLIS", "TERRA", "BRAVO", "ORBIT",
          "FRESKO", "DELTA", "MARINA")
POSTER_WORDS = ("SALE", "-20%", "NEW", "FRAGILE", "KEEP DRY", "PROMO", "2 FOR 1", "THIS WAY UP",
                "NO STEP", "SAFETY FIRST")


@dataclass
class LabelSpec:
    """What a SKU's label carries; identical on every facing of that SKU in a scene."""

    sku: str
    barcode: str  # 12 (UPC-A) or 13 (EAN-13) digits
    expiry_text: str
    code_kind: str  # "ean", "gs1-128" or "datamatrix"
    gs1_text: str  # bracketed element string "(01)...(17)...(10)..."


@dataclass
class Sprite:
    """A drawn object: BGR pixels, optional alpha, and what it shows, in sprite pixels."""

    img: np.ndarray
    alpha: np.ndarray | None = None
    # (format, text, box, module_px, gs1)
    codes: list[tuple[str, str, IntBox, float, bool]] = field(default_factory=list)
    # (text, box, cap_px, role)
    texts: list[tuple[str, IntBox, int, str]] = field(default_factory=list)

    def put(self, other: Sprite, x: int, y: int) -> None:
        """Paste ``other`` into this sprite at (x, y), carrying its codes and texts along."""
        paste(self.img, other.img, x, y, other.alpha)
        for fmt, text, (a, b, c, d), mod, gs1 in other.codes:
            self.codes.append((fmt, text, (a + x, b + y, c + x, d + y), mod, gs1))
        for text, (a, b, c, d), cap, role in other.texts:
            self.texts.append((text, (a + x, b + y, c + x, d + y), cap, role))


def _code_format(spec: LabelSpec) -> tuple[str, str, bool]:
    if spec.code_kind == "gs1-128":
        return "Code 128", spec.gs1_text, True
    if spec.code_kind == "datamatrix":
        return "DataMatrix", spec.gs1_text, True
    return ("UPC-A" if len(spec.barcode) == 12 else "EAN-13"), spec.barcode, False


def label_width_for(spec: LabelSpec, max_w: float, pref_w: float) -> int:
    """Label width: the preferred one, widened (up to ``max_w``) so modules reach 3 px."""
    fmt, text, gs1 = _code_format(spec)
    mods_w, _ = code_size(fmt, text, gs1)
    need = 3 * mods_w / DM_SHARE + 8 if fmt == "DataMatrix" else 3 * mods_w + 4
    if pref_w < need <= max_w:
        return int(need) + 1
    return int(pref_w)


# Share of the label width a DataMatrix takes; linear codes span the label (their quiet zones
# are part of the symbol, so the label needs no extra margin beside them).
DM_SHARE = 0.4


def render_label(spec: LabelSpec, width: int, bg: tuple[int, int, int] = (245, 245, 245),
                 max_h: float | None = None) -> Sprite:
    """White product label: SKU line, barcode or DataMatrix, expiry line.

    Bars get shorter (down to 10 % of the width) before the label exceeds ``max_h``;
    the caller narrows the label if even that does not fit.
    """
    width = max(12, int(width))
    pad = max(2, round(width * 0.04))
    inner = width - 2 * pad
    fmt, text, gs1 = _code_format(spec)
    if fmt == "Code 128" and (width - 4) / code_size(fmt, text, gs1)[0] < 2:
        fmt = "DataMatrix"  # a GS1-128 this small would be unreadable; real labels switch too
    mods_w, _ = code_size(fmt, text, gs1)
    module = inner * DM_SHARE / mods_w if fmt == "DataMatrix" else (width - 4) / mods_w
    if module >= 1:
        module = float(int(module))
    cap_sku = fit_cap(spec.sku, inner, max(4, inner * 0.14))
    # expiry: one line, or keyword and date on two lines when one line would print small
    exp_lines = [(spec.expiry_text, "expiry")]
    cap_exp = fit_cap(spec.expiry_text, inner, max(4, cap_sku * 0.8))
    if cap_exp < 0.6 * cap_sku and " " in spec.expiry_text:
        word, day = spec.expiry_text.rsplit(" ", 1)
        exp_lines = [(word, "expiry_word"), (day, "expiry")]
    caps = [fit_cap(t, inner, max(4, cap_sku * (0.8 if role == "expiry" else 0.6)))
            for t, role in exp_lines]
    gap = max(1, round(pad * 0.6))
    sku_h = text_mask(spec.sku, cap_sku).shape[0]
    exp_h = sum(text_mask(t, c).shape[0] for (t, _), c in zip(exp_lines, caps, strict=True))
    exp_h += gap * (len(exp_lines) - 1)
    fixed = 2 * pad + sku_h + exp_h + 2 * gap
    if fmt == "DataMatrix":
        code = render_code(fmt, text, module, 0, gs1)
    else:
        avail = (max_h - fixed) if max_h else inner * 0.22
        bar_h = round(min(max(avail, inner * 0.1), inner * 0.22))
        code = render_code(fmt, text, module, max(4, bar_h), gs1)
    height = fixed + code.shape[0]
    img = solid(height, width, bg)
    sprite = Sprite(img)
    ink = (20, 20, 20)
    y = pad
    box = draw_text(img, spec.sku, cap_sku, ink, pad, y)
    if box:
        sprite.texts.append((spec.sku, box, cap_sku, "sku"))
    y += sku_h + gap
    cx = (width - code.shape[1]) // 2
    img[y:y + code.shape[0], cx:cx + code.shape[1]] = code[..., None]
    sprite.codes.append((fmt, text, (cx, y, cx + code.shape[1], y + code.shape[0]), module, gs1))
    y += code.shape[0] + gap
    for (line, role), cap in zip(exp_lines, caps, strict=True):
        box = draw_text(img, line, cap, ink, pad, y)
        if box:
            sprite.texts.append((line, box, cap, role))
        y += text_mask(line, cap).shape[0] + gap
    cv2.rectangle(img, (0, 0), (width - 1, height - 1), (200, 200, 200), 1)
    return sprite


def _shade(img: np.ndarray, top: float, bottom: float) -> None:
    """Vertical brightness ramp, a cheap stand-in for overhead lighting on a face."""
    ramp = np.linspace(top, bottom, img.shape[0], dtype=np.float32)
    for y, g in enumerate(ramp):  # per row: cv2 saturates in place, no float copy of the face
        cv2.convertScaleAbs(img[y], dst=img[y], alpha=float(g))


def carton(w: int, h: int, rng: np.random.Generator, label: Sprite | None) -> Sprite:
    """Brown corrugated case: tape, flap seam, printed brand and handling marks, label."""
    base = np.array([rng.uniform(55, 95), rng.uniform(115, 150), rng.uniform(160, 205)])
    ramp = np.linspace(rng.uniform(1.0, 1.12), rng.uniform(0.8, 0.95), h, dtype=np.float32)
    # corrugation; its own generator so the draws below do not depend on the size
    grng = np.random.default_rng(int(rng.integers(2**32)))
    grain = (grng.normal(0, 3.0, (h, 1, 1)) + grng.normal(0, 2.0, (1, w, 1))).astype(np.float32)
    face = base.astype(np.float32)[None, None, :] * ramp[:, None, None] + grain
    img = np.clip(face, 0, 255).astype(np.uint8)
    sprite = Sprite(img)
    edge = tuple(int(c) for c in base * 0.6)
    t = max(1, round(min(w, h) * 0.012))
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), edge, t)
    flap = round(h * rng.uniform(0.06, 0.12))
    cv2.line(img, (0, flap), (w, flap), tuple(int(c) for c in base * 0.75), max(1, t))
    if rng.random() < 0.8:  # packing tape over the top seam, down the front
        tw = max(2, round(w * rng.uniform(0.08, 0.16)))
        tape = tuple(int(c) for c in np.clip(base * rng.uniform(1.1, 1.3), 0, 255))
        x0 = w // 2 - tw // 2
        cv2.rectangle(img, (x0, 0), (x0 + tw, round(h * rng.uniform(0.15, 0.3))), tape, -1)
    ink = (int(rng.uniform(20, 50)), int(rng.uniform(25, 50)), int(rng.uniform(30, 60)))
    if rng.random() < 0.8:
        brand = BRANDS[int(rng.integers(len(BRANDS)))]
        cap = fit_cap(brand, w * 0.45, h * 0.09)
        draw_text(img, brand, cap, ink, round(w * 0.06), flap + round(h * 0.05))
    if rng.random() < 0.5:  # "this way up" arrows
        s = max(3, round(min(w, h) * 0.08))
        x = w - round(w * 0.08) - 2 * s
        y = flap + round(h * 0.05)
        for dx in (0, s + s // 2):
            pts = np.array([[x + dx, y + s], [x + dx + s // 2, y], [x + dx + s, y + s]])
            cv2.polylines(img, [pts], False, ink, max(1, s // 5))
            cv2.line(img, (x + dx + s // 2, y), (x + dx + s // 2, y + 2 * s), ink, max(1, s // 5))
    if label is not None:
        lw, lh = label.img.shape[1], label.img.shape[0]
        x = int(rng.uniform(0.05, 0.95) * max(0, w - lw))
        y = int(max(flap + 2, h - lh - max(2, round(h * rng.uniform(0.04, 0.2)))))
        if y + lh <= h and x + lw <= w:
            sprite.put(label, x, y)
    return sprite


def printed_box(w: int, h: int, rng: np.random.Generator, label: Sprite | None) -> Sprite:
    """Retail product box: saturated print, a colour band, brand in white."""
    hue = int(rng.integers(0, 180))
    hsv = np.uint8([[[hue, rng.integers(120, 255), rng.integers(30, 230)]]])
    base = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    img = solid(h, w, base)
    band_col = tuple(int(c) for c in 255 - base)
    by = round(h * rng.uniform(0.15, 0.45))
    cv2.rectangle(img, (0, by), (w, by + round(h * 0.15)), band_col, -1)
    cv2.circle(img, (round(w * rng.uniform(0.3, 0.7)), round(h * 0.7)), round(min(w, h) * 0.15),
               tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    _shade(img, 1.05, 0.85)
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), tuple(int(c) for c in base // 2), 1)
    sprite = Sprite(img)
    brand = BRANDS[int(rng.integers(len(BRANDS)))]
    cap = fit_cap(brand, w * 0.8, h * 0.1)
    draw_text(img, brand, cap, (250, 250, 250), round(w * 0.08), round(h * 0.05))
    if label is not None:
        lw, lh = label.img.shape[1], label.img.shape[0]
        if lw <= w and lh <= h:
            sprite.put(label, (w - lw) // 2, h - lh - max(1, round(h * 0.03)))
    return sprite


def bottle(w: int, h: int, rng: np.random.Generator, label: Sprite | None) -> Sprite:
    """Plastic or glass bottle seen from the front: cap, neck, shoulders, label band."""
    alpha = np.zeros((h, w), np.uint8)
    body_top = round(h * rng.uniform(0.25, 0.35))
    neck_w = max(2, round(w * rng.uniform(0.3, 0.4)))
    nx0 = (w - neck_w) // 2
    cv2.rectangle(alpha, (nx0, 0), (nx0 + neck_w, body_top), 255, -1)
    cv2.ellipse(alpha, (w // 2, body_top), (w // 2, max(1, round(h * 0.1))), 0, 180, 360, 255, -1)
    cv2.rectangle(alpha, (0, body_top), (w - 1, h - 1), 255, -1)
    hue = int(rng.choice([100, 105, 60, 30, 0, 15, 140]))
    hsv = np.uint8([[[hue, rng.integers(60, 200), rng.integers(120, 230)]]])
    base = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    img = solid(h, w, base)
    # vertical highlight: bottles are cylinders, lit from the front
    ramp = 0.75 + 0.45 * np.sin(np.linspace(0.2, np.pi - 0.2, w, dtype=np.float32))
    img[:] = np.clip(img * ramp[None, :, None], 0, 255).astype(np.uint8)
    cap_h = max(2, round(h * 0.07))
    cv2.rectangle(img, (nx0 - 1, 0), (nx0 + neck_w + 1, cap_h),
                  tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    sprite = Sprite(img, alpha)
    band_y0 = round(h * rng.uniform(0.42, 0.5))
    band_y1 = round(h * rng.uniform(0.75, 0.88))
    band_col = tuple(int(c) for c in rng.integers(180, 256, 3))
    cv2.rectangle(img, (0, band_y0), (w, band_y1), band_col, -1)
    brand = BRANDS[int(rng.integers(len(BRANDS)))]
    cap = fit_cap(brand, w * 0.85, (band_y1 - band_y0) * 0.25)
    draw_text(img, brand, cap, (40, 30, 30), round(w * 0.07), band_y0 + 2)
    if label is not None:
        lw, lh = label.img.shape[1], label.img.shape[0]
        if lw <= w and lh <= band_y1 - band_y0:
            sprite.put(label, (w - lw) // 2, band_y1 - lh)
    return sprite


def can(w: int, h: int, rng: np.random.Generator, label: Sprite | None) -> Sprite:
    """Food can: metal rims, printed wrap."""
    alpha = np.zeros((h, w), np.uint8)
    ry = max(1, round(w * 0.12))
    cv2.rectangle(alpha, (0, ry), (w - 1, h - 1 - ry), 255, -1)
    cv2.ellipse(alpha, (w // 2, ry), (w // 2, ry), 0, 0, 360, 255, -1)
    cv2.ellipse(alpha, (w // 2, h - 1 - ry), (w // 2, ry), 0, 0, 360, 255, -1)
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(150, 255), rng.integers(120, 230)]]])
    base = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    img = solid(h, w, base)
    metal = (190, 190, 195)
    img[:ry * 2 + 1] = metal
    img[h - 2 * ry - 1:] = metal
    ramp = 0.7 + 0.5 * np.sin(np.linspace(0.2, np.pi - 0.2, w, dtype=np.float32))
    img[:] = np.clip(img * ramp[None, :, None], 0, 255).astype(np.uint8)
    cv2.ellipse(img, (w // 2, ry), (w // 2 - 1, ry), 0, 0, 360, (120, 120, 125), 1)
    sprite = Sprite(img, alpha)
    brand = BRANDS[int(rng.integers(len(BRANDS)))]
    cap = fit_cap(brand, w * 0.8, h * 0.12)
    draw_text(img, brand, cap, (245, 245, 245), round(w * 0.1), round(h * 0.3))
    if label is not None:
        lw, lh = label.img.shape[1], label.img.shape[0]
        if lw <= w and lh <= h - 4 * ry:
            sprite.put(label, (w - lw) // 2, h - 2 * ry - lh - 1)
    return sprite


def bag(w: int, h: int, rng: np.random.Generator, label: Sprite | None) -> Sprite:
    """Pillow bag / sack: crimped top seal, bulging sides, window or print."""
    alpha = np.zeros((h, w), np.uint8)
    seal = max(2, round(h * 0.08))
    bulge = max(1, round(w * 0.04))
    pts = np.array([[bulge, seal], [w - 1 - bulge, seal], [w - 1, h // 2],
                    [w - 1 - bulge, h - 1], [bulge, h - 1], [0, h // 2]], np.int32)
    cv2.fillPoly(alpha, [pts], 255)
    cv2.rectangle(alpha, (bulge, 0), (w - 1 - bulge, seal), 255, -1)
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(40, 220), rng.integers(30, 220)]]])
    base = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    img = solid(h, w, base)
    for x in range(bulge, w - bulge, max(2, seal // 2)):  # crimp teeth
        cv2.line(img, (x, 0), (x, seal), tuple(int(c) for c in base // 2), 1)
    _shade(img, 1.1, 0.8)
    sprite = Sprite(img, alpha)
    brand = BRANDS[int(rng.integers(len(BRANDS)))]
    cap = fit_cap(brand, w * 0.75, h * 0.1)
    draw_text(img, brand, cap, (250, 250, 250), round(w * 0.12), seal + round(h * 0.06))
    if label is not None:
        lw, lh = label.img.shape[1], label.img.shape[0]
        if lw <= w - 2 * bulge and lh <= h - seal * 3:
            sprite.put(label, (w - lw) // 2, h - lh - max(2, round(h * 0.05)))
    return sprite


DRAWERS = {"carton": carton, "box": printed_box, "bottle": bottle, "can": can, "bag": bag}
# width / height of a facing, per kind (ranges)
ASPECTS = {"carton": (0.9, 1.7), "box": (0.6, 1.3), "bottle": (0.28, 0.42), "can": (0.6, 0.8),
           "bag": (0.6, 0.9)}


def price_tag(price: str, desc: str, w: int, h: int, rng: np.random.Generator) -> Sprite:
    """Shelf-edge price tag: a hard negative (text, not an item)."""
    img = solid(h, w, (255, 255, 255) if rng.random() < 0.6 else (60, 230, 250))
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), (150, 150, 150), 1)
    sprite = Sprite(img)
    cap = fit_cap(price, w * 0.8, h * 0.45)
    box = draw_text(img, price, cap, (20, 20, 20), max(1, round(w * 0.08)), round(h * 0.4))
    if box:
        sprite.texts.append((price, box, cap, "price"))
    cap2 = fit_cap(desc, w * 0.85, h * 0.14, "regular")
    draw_text(img, desc, cap2, (40, 40, 40), max(1, round(w * 0.06)), round(h * 0.1), "regular")
    return sprite


def poster(w: int, h: int, rng: np.random.Generator) -> Sprite:
    """Sign or promotional poster on the racking: a hard negative for the item detector."""
    img = solid(h, w, tuple(int(c) for c in rng.integers(0, 256, 3)))
    word = POSTER_WORDS[int(rng.integers(len(POSTER_WORDS)))]
    fg = (255, 255, 255) if img[0, 0].mean() < 128 else (10, 10, 10)
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), fg, max(1, round(min(w, h) * 0.04)))
    sprite = Sprite(img)
    cap = fit_cap(word, w * 0.8, h * 0.4)
    mask = text_mask(word, cap)
    box = draw_text(img, word, cap, fg, (w - mask.shape[1]) // 2, (h - mask.shape[0]) // 2)
    if box:
        sprite.texts.append((word, box, cap, "poster"))
    return sprite


def load_sign(w: int, h: int, rng: np.random.Generator) -> Sprite:
    """Beam load-capacity sign (yellow, black text): a hard negative on warehouse racking."""
    img = solid(h, w, (20, 200, 245))
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), (10, 10, 10), max(1, round(h * 0.06)))
    sprite = Sprite(img)
    text = f"MAX {int(rng.choice([500, 800, 1000, 1500, 2000]))} kg"
    cap = fit_cap(text, w * 0.85, h * 0.4)
    mask = text_mask(text, cap)
    box = draw_text(img, text, cap, (10, 10, 10), (w - mask.shape[1]) // 2,
                    (h - mask.shape[0]) // 2)
    if box:
        sprite.texts.append((text, box, cap, "sign"))
    return sprite


def rotated(sprite: Sprite, angle: float) -> Sprite:
    """The sprite turned by ``angle`` degrees (a case standing askew), on a canvas that holds
    it whole; alpha marks the object, code and text boxes become their rotated extents."""
    h, w = sprite.img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(w * cos + h * sin)), int(np.ceil(h * cos + w * sin))
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    img = cv2.warpAffine(sprite.img, m, (nw, nh), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    src_alpha = sprite.alpha if sprite.alpha is not None else np.full((h, w), 255, np.uint8)
    alpha = cv2.warpAffine(src_alpha, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=0)
    out = Sprite(img, alpha)

    def turn(box: IntBox) -> IntBox:
        pts = np.array([[box[0], box[1], 1], [box[2], box[1], 1], [box[2], box[3], 1],
                        [box[0], box[3], 1]], np.float64) @ m.T
        return (int(np.floor(pts[:, 0].min())), int(np.floor(pts[:, 1].min())),
                int(np.ceil(pts[:, 0].max())), int(np.ceil(pts[:, 1].max())))

    out.codes = [(f, t, turn(b), mod, gs1) for f, t, b, mod, gs1 in sprite.codes]
    out.texts = [(t, turn(b), cap, role) for t, b, cap, role in sprite.texts]
    return out
