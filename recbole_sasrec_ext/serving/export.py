"""``python -m recbole_sasrec_ext export --checkpoint X --out DIR``: a checkpoint to a bundle.

The bundle (:mod:`recbole_sasrec_ext.serving.bundle`) is written to a temporary folder beside
``DIR`` and renamed when complete. Exporting reads the checkpoint's data set (RecBole, the
training data): the vocabulary, the popularity and the users' histories come from it; loading the
bundle needs neither. The ONNX graph is checked against the PyTorch encoder on real users before
the bundle is kept (the largest score difference is in the card).

RKSA is refused: its attention logits depend on a user embedding and a co-occurrence kernel built
from the training data, so a bundle could only score the users it was trained on.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from recbole_sasrec_ext.common.atomic_write import _umask
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.common.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from recbole_sasrec_ext.common.titles import item_file, read_titles
from recbole_sasrec_ext.serving import bundle as bundle_io
from recbole_sasrec_ext.serving.encoder import ENCODER_KEYS, LastPositionEncoder
from recbole_sasrec_ext.serving.padding import pad_right
from recbole_sasrec_ext.training import checkpoint as ckpt

#: Implementations ``export`` accepts.
EXPORTABLE = ("recbole_sasrec_ext.models.sasrec.SASRec",)
RKSA_REFUSAL = (
    "RKSA cannot be exported: its attention depends on a learned per-user embedding and on an "
    "item co-occurrence kernel built from the training data, so it cannot score new sequences; "
    "export a SASRec checkpoint"
)
#: ONNX opset of the graph (onnxruntime >= 1.14 runs it).
OPSET = 17
#: Users on which the ONNX graph is checked against PyTorch at export.
CHECK_USERS = 256


def check_exportable(state: dict, path: os.PathLike) -> None:
    """Raise a one-line :class:`PluginError` unless ``state`` is a plugin SASRec checkpoint."""
    config = state.get("config", {})
    implementation = config.get("implementation", "")
    if implementation.endswith(".RKSA") or config.get("model") == "RKSA":
        raise PluginError(f"{path}: {RKSA_REFUSAL}")
    if implementation not in EXPORTABLE:
        raise PluginError(f"{path}: only the plugin's SASRec can be exported, this checkpoint is "
                          f"{implementation or config.get('model')}")
    output = config.get("final", {}).get("output_embedding", "tied")
    if output != "tied":
        raise PluginError(f"{path}: output_embedding is {output!r}; a bundle scores with the input "
                          "item table, so only output_embedding 'tied' can be exported")


def encoder_settings(model, config) -> dict:
    """The bundle's ``settings.json`` for a plugin SASRec model and its config."""
    settings = {
        "n_items": int(model.n_items),
        "max_seq_length": int(model.max_seq_length),
        **{k: config[k] for k in ENCODER_KEYS if k not in ("n_items", "max_seq_length")},
    }
    return {
        "format": bundle_io.BUNDLE_FORMAT,
        "model": "SASRec",
        "padding_side": "right",
        "position_order": settings["position_order"],
        "max_seq_length": settings["max_seq_length"],
        "pad_id": 0,
        "onnx": {"inputs": {"item_seq": "(B, L) int64, right-padded, L <= max_seq_length",
                            "lengths": "(B,) int64, >= 1"},
                 "outputs": {"scores": "(B, n_items) float32, column 0 = padding"},
                 "opset": OPSET},
        "encoder": settings,
    }


def build_encoder(model, config) -> LastPositionEncoder:
    """The inference encoder holding ``model``'s weights."""
    settings = encoder_settings(model, config)["encoder"]
    encoder = LastPositionEncoder(settings).eval()
    own = encoder.state_dict().keys()
    encoder.load_state_dict({k: v for k, v in model.state_dict().items() if k in own})
    return encoder


def export_onnx(encoder: LastPositionEncoder, path: Path) -> None:
    """Trace ``encoder`` to ONNX with a dynamic batch and window length."""
    import warnings

    item_seq = torch.tensor([[1, 2, 3], [2, 0, 0]])  # (2, 3)
    lengths = torch.tensor([3, 1])  # (2,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder, (item_seq, lengths), str(path), dynamo=False, opset_version=OPSET,
            input_names=["item_seq", "lengths"], output_names=["scores"],
            dynamic_axes={"item_seq": {0: "batch", 1: "length"}, "lengths": {0: "batch"},
                          "scores": {0: "batch"}},
        )


def histories(dataset) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Users (tokens), CSR offsets (U+1,) and item ids (N,) of the data set, time order."""
    users, items = dataset.user_item_pairs  # sorted by user, then time
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1, len(users)]  # (U+1,)
    tokens = [str(t) for t in dataset.id2token(dataset.uid_field, users[starts[:-1]])]
    return tokens, starts.astype(np.int64), np.asarray(items, dtype=np.int32)


#: The card's words for test metrics the checkpoint does not hold.
TEST_UNKNOWN = ("unknown: the checkpoint holds only validation metrics (a run prints its test "
                "metrics in its summary, the last line of its output); export with --summary "
                "FILE to record them")


def run_metrics(state: dict, checkpoint: os.PathLike, summary: os.PathLike | None) -> dict:
    """Validation and test metrics of the run that wrote ``checkpoint``: from the checkpoint
    (best validation) and, when given, the run's summary (a file whose last line is the JSON
    summary a run prints); test metrics without a summary are unknown and the card says so."""
    progress = state.get("progress", {})
    valid = progress.get("best_valid_result") or None
    metrics = {"validation": valid,
               "validation_source": (f"the checkpoint: best validation, epoch "
                                     f"{progress.get('best_epoch')} of {progress.get('epochs_run')}"
                                     " run" if valid else "unknown: not in the checkpoint"),
               "test": None, "test_source": TEST_UNKNOWN,
               "best_epoch": progress.get("best_epoch"), "epochs_run": progress.get("epochs_run")}
    if summary is None:
        return metrics
    from recbole_sasrec_ext.contract.summary import RunSummary, SummaryError

    try:
        lines = [line for line in Path(summary).read_text(encoding="utf-8").splitlines()
                 if line.strip()]
        run = RunSummary.from_json(lines[-1] if lines else "")
    except (OSError, SummaryError) as exc:
        raise PluginError(f"--summary {summary}: not a run summary "
                          f"({' '.join(str(exc).split())})") from None
    if run.checkpoint is None or Path(run.checkpoint).name != Path(checkpoint).name:
        raise PluginError(f"--summary {summary} is the summary of checkpoint {run.checkpoint}, "
                          f"not of {Path(checkpoint).name}")
    metrics.update(validation=run.best_valid_result or valid,
                   validation_source=f"the run's summary ({Path(summary).name}): best validation",
                   test=run.test_result or None,
                   test_source=(f"the run's summary ({Path(summary).name}): the best "
                                "checkpoint on the test split" if run.test_result else
                                "unknown: the run did not evaluate the test split"))
    return metrics


def protocol_details(config) -> dict:
    """How the metrics were computed: split, order, candidates, metrics, cut-offs."""
    args = config["eval_args"]
    return {"split": args.get("split"), "order": args.get("order"),
            "group_by": args.get("group_by"), "mode": args.get("mode"),
            "metrics": list(config["metrics"]), "topk": list(config["topk"]),
            "valid_metric": config["valid_metric"], "filter_seen": bool(config["filter_seen"])}


def model_card(state: dict, config, dataset, path: os.PathLike, check: dict,
               summary: os.PathLike | None = None) -> dict:
    """Data set, metrics, protocol, versions and date of the exported model."""
    import onnx
    import onnxruntime

    from recbole_sasrec_ext.apps.quick_start import _protocol, _versions

    return {
        "model": "SASRec",
        "checkpoint": os.path.basename(str(path)),
        "dataset": {"name": config["dataset"], "users": int(dataset.user_num - 1),
                    "items": int(dataset.item_num - 1),
                    "interactions": int(len(dataset.inter_feat)),
                    "fingerprint": state.get("data")},
        "protocol": _protocol(config),
        "protocol_details": protocol_details(config),
        "metrics": run_metrics(state, path, summary),
        "versions": {**_versions(), "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "exported_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "export_check": check,
    }


def check_onnx(encoder: LastPositionEncoder, onnx_path: Path, seqs: list[np.ndarray],
               max_len: int) -> dict:
    """Largest score difference and top-10 agreement, ONNX vs PyTorch, on ``seqs``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    item_seq, lengths = pad_right(seqs, max_len)  # (B, L), (B,)
    got = session.run(None, {"item_seq": item_seq, "lengths": lengths})[0]  # (B, n)
    with torch.inference_mode():
        want = encoder(torch.from_numpy(item_seq), torch.from_numpy(lengths)).numpy()  # (B, n)
    diff = float(np.abs(got - want).max())
    top = lambda s: np.argsort(-s[:, 1:], axis=1, kind="stable")[:, :10]  # noqa: E731
    same = int((top(got) == top(want)).all(1).sum())
    if diff > 1e-3:
        raise PluginError(f"ONNX export check failed: scores differ by {diff:.3g} from PyTorch")
    return {"users": len(seqs), "max_abs_score_diff": diff, "top10_identical": same}


def export(checkpoint: os.PathLike, out: os.PathLike, with_histories: bool = True,
           summary: os.PathLike | None = None) -> Path:
    """Write the bundle of a SASRec ``checkpoint`` to the new folder ``out`` (``summary``: the
    run's summary, for the card's test metrics)."""
    out = Path(out)
    state = ckpt.load(checkpoint, map_location="cpu")
    check_exportable(state, checkpoint)
    run_metrics(state, checkpoint, summary)  # a wrong --summary fails before the slow part
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PluginError(f"--out {out} exists and is not an empty folder")
    if not out.parent.is_dir():
        raise PluginError(f"--out {out}: folder {out.parent} does not exist")
    from recbole_sasrec_ext.apps.quick_start import load_data_and_model

    config, model, dataset, *_ = load_data_and_model(str(checkpoint))
    model.eval()
    encoder = build_encoder(model, config)
    users, offsets, items = histories(dataset)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        settings = encoder_settings(model, config)
        bundle_io.write_json(tmp / bundle_io.SETTINGS, settings)
        tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field]]
        bundle_io.write_json(tmp / bundle_io.ITEMS, tokens)
        popularity = np.bincount(items, minlength=len(tokens)).astype(np.int64)  # (n_items,)
        popularity[0] = 0
        np.save(tmp / bundle_io.POPULARITY, popularity)
        weight = encoder.embedding.item.weight.detach().numpy().astype(np.float32)  # (n, d)
        np.save(tmp / bundle_io.EMBEDDINGS, weight)
        torch.save(encoder.state_dict(), tmp / bundle_io.TORCH_WEIGHTS)
        export_onnx(encoder, tmp / bundle_io.ONNX_MODEL)
        max_len = settings["max_seq_length"]
        sample = [items[offsets[u] : offsets[u + 1]][-max_len:].astype(np.int64)
                  for u in range(min(CHECK_USERS, len(users)))]
        check = check_onnx(encoder, tmp / bundle_io.ONNX_MODEL, sample, max_len)
        titles = read_titles(item_file(config["data_path"], config["dataset"]))
        titles = {t: titles[t] for t in tokens[1:] if t in titles}
        if titles:
            bundle_io.write_json(tmp / bundle_io.TITLES, titles)
        if with_histories:
            bundle_io.write_json(tmp / bundle_io.USERS, users)
            np.save(tmp / bundle_io.HISTORY_OFFSETS, offsets)
            np.save(tmp / bundle_io.HISTORY_ITEMS, items)
        bundle_io.write_json(tmp / bundle_io.CARD,
                             model_card(state, config, dataset, checkpoint, check, summary))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp made it private
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_sasrec_ext export",
        description="Write a self-contained bundle (ONNX, PyTorch weights, vocabulary, card) of a "
        "SASRec checkpoint, loadable without RecBole: recbole_sasrec_ext.serving.load(DIR).",
    )
    parser.add_argument("--checkpoint", required=True, help="a .pth file written by a plugin run")
    parser.add_argument("--out", required=True, help="the bundle folder to create (new or empty)")
    parser.add_argument("--no-histories", action="store_true",
                        help="leave out the users' histories (no --all-users from the bundle)")
    parser.add_argument("--summary", default=None,
                        help="the run's summary (a file whose last line is the JSON a run prints "
                        "last): its test metrics go into the model card")
    args = parser.parse_args(argv)
    try:
        path = export(args.checkpoint, args.out, not args.no_histories, args.summary)
    except PluginError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return EXIT_BAD_INPUT
    print(str(path))
    return EXIT_OK
