"""fermix: facial-expression and emotion recognition methods as plugins of one framework."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`fermix.load(ckpt)` imports torch on first use only, so `import fermix` (and `fermix --help`) stays light."""
    if name == "load":
        from fermix.inference import load

        return load
    raise AttributeError(f"module 'fermix' has no attribute {name!r}")
