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
from recbole_sasrec_ext.serving.topk import top_k_rows

#: Names of the runtimes ``serving.load(backend=...)`` accepts.
BACKENDS = ("onnx", "torch")


class Scorer(Protocol):
    """What the inference API needs from a runtime."""

    name: str

    def __call__(self, item_seq: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Scores (B, n_items) float32 for item ids (B, L) and lengths (B,)."""
        ...

    def top_k(self, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """:func:`~recbole_sasrec_ext.serving.topk.top_k_rows` of ``scores``."""
        ...


#: onnxruntime session settings (``OnnxScorer(session=...)`` overrides any of them). Measured one
#: by one with ``python -m recbole_sasrec_ext.benchmark.inference --steps`` (docs/serving.md).
SESSION_DEFAULTS = {
    "optimization": "all",  # graph optimisation level: disable | basic | extended | all
    "intra_op_threads": 1,  # threads of one run (None: one per core); the `threads` argument wins
    "sequential": True,  # operators one after another (the graph is a chain: nothing to overlap)
    "memory_pattern": True,  # reuse the allocation plan of the previous run of the same shapes
    "spinning": False,  # worker threads sleep between operators instead of spinning
}
_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
           "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def _topk_graph() -> bytes | None:
    """A one-operator ONNX graph: ``TopK`` (largest, sorted; equal scores: smaller index first,
    as :func:`top_k_rows`) of ``scores`` (B, n) float32, ``k`` (1,) int64; None without the
    ``onnx`` package (then top-k runs in numpy)."""
    try:
        from onnx import TensorProto, helper
    except ImportError:
        return None
    node = helper.make_node("TopK", ["scores", "k"], ["values", "indices"], axis=1, largest=1,
                            sorted=1)
    graph = helper.make_graph(
        [node], "top_k",
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["B", "n"]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["B", "k"]),
         helper.make_tensor_value_info("indices", TensorProto.INT64, ["B", "k"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnxruntime >= 1.14
    return model.SerializeToString()


class OnnxScorer:
    """The bundle's ``model.onnx`` on onnxruntime's CPU provider.

    Parameters
    ----------
    path : Path
        The bundle folder.
    threads : int or None
        Intra-op threads (None: ``SESSION_DEFAULTS``).
    session : dict or None
        Overrides of :data:`SESSION_DEFAULTS`.
    """

    name = "onnx"

    def __init__(self, path: Path, threads: int | None = None, session: dict | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise PluginError("backend 'onnx' needs onnxruntime: pip install onnxruntime "
                              "(or use backend 'torch')") from None
        self.settings = {**SESSION_DEFAULTS, **(session or {})}
        if threads:
            self.settings["intra_op_threads"] = threads
        self.session = ort.InferenceSession(str(path / ONNX_MODEL), self._options(ort),
                                            providers=["CPUExecutionProvider"])
        graph = _topk_graph()
        self.topk_session = None if graph is None else ort.InferenceSession(
            graph, self._options(ort), providers=["CPUExecutionProvider"])

    def _options(self, ort):
        s = self.settings
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                                   _LEVELS[s["optimization"]])
        if s["intra_op_threads"]:
            options.intra_op_num_threads = s["intra_op_threads"]
        options.inter_op_num_threads = 1
        options.execution_mode = (ort.ExecutionMode.ORT_SEQUENTIAL if s["sequential"]
                                  else ort.ExecutionMode.ORT_PARALLEL)
        options.enable_mem_pattern = bool(s["memory_pattern"])
        options.log_severity_level = 3
        # no busy-waiting between operators: on a machine shared with other work (or with the
        # server's event loop) spinning threads take the cores from it (measured: about twice
        # the users/s of all-users scoring on the 2-core benchmark machine under load)
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if s["spinning"] else "0")
        return options

    def __call__(self, item_seq: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        feed = {"item_seq": np.ascontiguousarray(item_seq, dtype=np.int64),
                "lengths": np.ascontiguousarray(lengths, dtype=np.int64)}
        return self.session.run(["scores"], feed)[0]  # (B, n_items)

    def top_k(self, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """:func:`top_k_rows` on onnxruntime's ``TopK`` (about 4x numpy's argpartition).

        ``TopK`` does not promise which of equal scores it keeps, so the k returned are ordered
        by (score desc, id asc), and the rare rows with more items equal to their k-th score than
        it kept are redone by :func:`top_k_rows`: the result is exactly :func:`top_k_rows`'s.
        """
        if self.topk_session is None:
            return top_k_rows(scores, k)
        scores = np.ascontiguousarray(scores, dtype=np.float32)  # (B, n)
        k = min(k, scores.shape[1])
        values, indices = self.topk_session.run(
            None, {"scores": scores, "k": np.asarray([k], dtype=np.int64)})  # (B, k) each
        order = np.lexsort((indices, -values), axis=1)  # (B, k) score desc, then id
        values = np.take_along_axis(values, order, axis=1)  # (B, k)
        indices = np.take_along_axis(indices, order, axis=1)  # (B, k)
        kth = values[:, -1:]  # (B, 1)
        ties = np.isfinite(kth[:, 0]) & ((scores == kth).sum(1) > (values == kth).sum(1))  # (B,)
        if ties.any():
            rows = np.flatnonzero(ties)
            indices[rows] = top_k_rows(scores[rows], k)[0]
        return indices, np.isfinite(values).sum(1)


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

    def top_k(self, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return top_k_rows(scores, k)


def make_scorer(path: Path, settings: dict, backend: str = "auto",
                threads: int | None = None, session: dict | None = None) -> Scorer:
    """The runtime named ``backend`` (``auto``: onnx when onnxruntime is installed, else torch)."""
    if backend == "auto":
        try:
            import onnxruntime  # noqa: F401
            backend = "onnx"
        except ImportError:
            backend = "torch"
    if backend == "onnx":
        return OnnxScorer(path, threads, session)
    if backend == "torch":
        return TorchScorer(path, settings["encoder"], threads)
    raise PluginError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")

