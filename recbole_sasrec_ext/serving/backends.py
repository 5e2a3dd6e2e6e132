"""The two runtimes of a bundle's network: onnxruntime (default) and pure PyTorch (fallback).

Both map right-padded item ids (B, L) int64 and lengths (B,) int64 to scores (B, n_items) float32.
onnxruntime is Microsoft's runtime for ONNX, maintained, with CPU wheels for every platform and
no dependency on torch; it is imported only when used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.serving.bundle import ONNX_MODEL, TORCH_WEIGHTS

#: Names of the runtimes ``serving.load(backend=...)`` accepts.
BACKENDS = ("onnx", "torch")


class Scorer(Protocol):
    """What the inference API needs from a runtime."""

    name: str

    def __call__(self, item_seq: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Scores (B, n_items) float32 for item ids (B, L) and lengths (B,)."""
        ...


class OnnxScorer:
    """The bundle's ``model.onnx`` on onnxruntime's CPU provider.

    Parameters
    ----------
    path : Path
        The bundle folder.
    threads : int or None
        Intra-op threads (None: onnxruntime's default, one per core).
    """

    name = "onnx"

    def __init__(self, path: Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise PluginError("backend 'onnx' needs onnxruntime: pip install onnxruntime "
                              "(or use backend 'torch')") from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # no busy-waiting between operators: on a machine shared with other work (or with the
        # server's event loop) spinning threads take the cores from it (measured: about twice
        # the users/s of all-users scoring on the 2-core benchmark machine under load)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path / ONNX_MODEL), options,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, item_seq: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        feed = {"item_seq": np.ascontiguousarray(item_seq, dtype=np.int64),
                "lengths": np.ascontiguousarray(lengths, dtype=np.int64)}
        return self.session.run(["scores"], feed)[0]  # (B, n_items)


class TorchScorer:
    """The fallback: :class:`~recbole_sasrec_ext.serving.encoder.LastPositionEncoder` rebuilt
    from the bundle's settings and weights-only ``weights.pt``."""

    name = "torch"

    def __init__(self, path: Path, settings: dict, threads: int | None = None):
        import torch

        from recbole_sasrec_ext.serving.encoder import LastPositionEncoder

        if threads:
            torch.set_num_threads(threads)
        self.model = LastPositionEncoder(settings).eval()
        state = torch.load(path / TORCH_WEIGHTS, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)

    def __call__(self, item_seq: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            scores = self.model(torch.from_numpy(np.asarray(item_seq, dtype=np.int64)),
                                torch.from_numpy(np.asarray(lengths, dtype=np.int64)))
        return scores.numpy()  # (B, n_items)


def make_scorer(path: Path, settings: dict, backend: str = "auto",
                threads: int | None = None) -> Scorer:
    """The runtime named ``backend`` (``auto``: onnx when onnxruntime is installed, else torch)."""
    if backend == "auto":
        try:
            import onnxruntime  # noqa: F401
            backend = "onnx"
        except ImportError:
            backend = "torch"
    if backend == "onnx":
        return OnnxScorer(path, threads)
    if backend == "torch":
        return TorchScorer(path, settings["encoder"], threads)
    raise PluginError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")

