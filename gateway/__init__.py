"""ShelfCount gateway: turns shelf photos into stock-count rows through NVIDIA Triton."""

__version__ = "0.1.0"
