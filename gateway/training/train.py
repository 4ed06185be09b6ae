"""The training loop: step-based schedule, EMA, gradient clipping, resumable checkpoints.

Everything that shapes the result is a function of the step number and the seed, never of wall
time (on a shared machine a time-driven schedule trains a different model every run): linear
warm-up then cosine decay over ``steps``, a per-step RNG for sampling and augmentation, and an
exponential moving average of the weights, which is what gets exported.
"""

from __future__ import annotations

import copy
import math
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gateway.training.data import LabelledImage, augment, transform
from gateway.training.loss import build_targets, focal_loss, giou_loss
from gateway.training.model import ItemDetector, normalise
from gateway.training.real import photometric

GIOU_WEIGHT = 5.0


@dataclass
class TrainConfig:
    """Hyper-parameters; the defaults are the ones the shipped model was trained with."""

    steps: int = 5000
    batch: int = 8
    # Training crops are cut at random from the cached views (translation augmentation for
    # free); 256 px keeps a step affordable on a shared 2-core CPU.
    crop: int = 256
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup: int = 300
    ema_decay: float = 0.999
    clip: float = 10.0
    seed: int = 0
    # One thread: on a shared 2-core machine OpenMP's two-thread barriers made a step ~8x
    # slower than one thread under load (measured); batches are prepared in a second thread.
    threads: int = 1
    checkpoint_every: int = 250
    width: float = 1.0
    # Real-photo training adds camera degradations (blur, noise, JPEG, grey) to every view.
    strong_aug: bool = False
    # "cuda" on a GPU machine (batches are still built on the CPU); results are reproducible
    # bit for bit on the CPU with one thread only.
    device: str = "cpu"


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Warm-up then cosine to 2% of the peak, as a function of the step only."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


class ModelEMA:
    """Exponential moving average of weights (and BN buffers), warmed up for early steps."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval()
        self.decay = decay
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = self.decay * (1 - math.exp(-(step + 1) / 500))
        src = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1 - d)
            else:
                v.copy_(src[k])


def make_batch(items: list[LabelledImage]) -> dict[str, torch.Tensor]:
    """Stack images and their targets into tensors."""
    h, w = items[0].image.shape[:2]
    targets = [build_targets(*it.split(), h, w) for it in items]
    return {
        "images": torch.from_numpy(np.stack([it.image for it in items])),
        **{k: torch.from_numpy(np.stack([t[k] for t in targets])) for k in targets[0]},
    }


def sample_batch(
    source: Callable[[int], LabelledImage], n_source: int, step: int, cfg: TrainConfig
) -> dict[str, torch.Tensor]:
    """The batch for ``step``: a pure function of (seed, step), so resumed runs match."""
    rng = np.random.default_rng([cfg.seed, step])
    idx = rng.integers(0, n_source, size=cfg.batch)
    items = []
    for i in idx:
        item = source(int(i))
        h, w = item.image.shape[:2]
        if cfg.crop < max(h, w):
            ox = rng.integers(0, max(1, w - cfg.crop + 1))
            oy = rng.integers(0, max(1, h - cfg.crop + 1))
            item = transform(item, 1.0, float(ox), float(oy), cfg.crop)
        item = augment(item, rng)
        items.append(photometric(item, rng) if cfg.strong_aug else item)
    return make_batch(items)


def _prefetch(
    source: Callable[[int], LabelledImage], n_source: int, start: int, cfg: TrainConfig
) -> queue.Queue:
    """Build the next batches in a daemon thread (cv2/numpy release the GIL), in step order."""
    q: queue.Queue = queue.Queue(maxsize=3)

    def work() -> None:
        for step in range(start, cfg.steps):
            q.put(sample_batch(source, n_source, step, cfg))

    threading.Thread(target=work, daemon=True, name="batches").start()
    return q


def compute_loss(
    model: ItemDetector, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    heat, sides = model(normalise(batch["images"]))
    lh = focal_loss(heat[:, 0], batch["heat"], batch["mask"])
    lb = giou_loss(sides, batch["box"], batch["weight"])
    loss = lh + GIOU_WEIGHT * lb
    return loss, {"heat": float(lh.detach()), "giou": float(lb.detach())}


def save_checkpoint(path: Path, model, ema: ModelEMA, opt, step: int, cfg: TrainConfig,
                    elapsed_s: float) -> None:
    """Atomic write (tmp + rename) so a crash mid-save keeps the previous checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "ema": ema.model.state_dict(),
                "opt": opt.state_dict(), "step": step, "config": asdict(cfg),
                "elapsed_s": elapsed_s}, tmp)
    tmp.replace(path)


def train(
    source: Callable[[int], LabelledImage],
    n_source: int,
    cfg: TrainConfig,
    run_dir: Path,
    init_weights: Path | None = None,
    quiet: bool = False,
) -> tuple[ItemDetector, dict[str, object]]:
    """Train (or resume from ``run_dir/last.pt``); returns the EMA model and run facts.

    ``init_weights``: a state dict to fine-tune from (the shipped model) when not resuming.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = torch.device(cfg.device)
    model = ItemDetector(cfg.width)
    if init_weights is not None:
        model.load_state_dict(torch.load(init_weights, map_location="cpu"))
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = ModelEMA(model, cfg.ema_decay)
    start, elapsed = 0, 0.0
    ckpt = run_dir / "last.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=dev)
        model.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        start, elapsed = int(state["step"]), float(state.get("elapsed_s", 0.0))
    model.train()
    t0 = time.monotonic() - elapsed
    bar = tqdm(total=cfg.steps, initial=start, file=sys.stderr, disable=quiet,
               desc="train", unit="step", dynamic_ncols=True)
    losses: list[float] = []
    batches = _prefetch(source, n_source, start, cfg)
    for step in range(start, cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        batch = {k: v.to(dev, non_blocking=True) for k, v in batches.get().items()}
        loss, parts = compute_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        ema.update(model, step)
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", heat=f"{parts['heat']:.3f}",
                        giou=f"{parts['giou']:.3f}", lr=f"{lr_at(step, cfg):.1e}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            save_checkpoint(ckpt, model, ema, opt, step + 1, cfg, time.monotonic() - t0)
    bar.close()
    facts = {"steps": cfg.steps, "train_wall_s": round(time.monotonic() - t0, 1),
             "final_loss": float(np.mean(losses[-100:])) if losses else None,
             "config": asdict(cfg), "loss_curve": losses}
    return ema.model.cpu(), facts
