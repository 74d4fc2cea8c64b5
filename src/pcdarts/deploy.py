"""Ship a trained network: ONNX / TorchScript / torch.export files with metadata, and prediction."""

from __future__ import annotations

import errno
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import DataError
from .errors import ConfigError, PCDartsError, RunError
from .files import atomic_write_bytes, check_target, load_checkpoint, require_keys
from .nas.genotype import Genotype
from .nas.network import build_network


@dataclass(frozen=True)
class ModelInfo:
    """What a trained network needs around it: its classes, input size and normalisation, cell and dataset."""

    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int]
    in_channels: int
    genotype: Genotype
    dataset: str
    model_args: dict[str, Any] = field(default_factory=dict, compare=False)  # how build_network rebuilt it

    def preprocess(self, image: Any) -> torch.Tensor:
        """An image file or PIL image as ``predict`` prepares it: (C, H, W) floats in [0, 1] at the input size.

        Image-folder models resize the shorter side and centre-crop (as they were evaluated); tensor datasets
        resize the whole image. Stack the results and pass them to ``predict_tensor``, which normalises.
        """
        from .deploy import CROP_DATASETS, load_image

        return load_image(image, self.in_channels, self.input_size, self.dataset in CROP_DATASETS)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (the metadata written beside exported models)."""
        return {
            "classes": list(self.classes),
            "mean": list(self.mean),
            "std": list(self.std),
            "input_size": list(self.input_size),
            "genotype": self.genotype.to_dict(),
            "dataset": self.dataset,
        }


def load_trained(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, ModelInfo]:
    """Rebuild a trained network from a run folder or checkpoint (eval mode, no auxiliary head) and its info."""
    state = load_checkpoint(path, map_location)
    if state.get("kind") != "train":
        raise RunError(
            f"{path} holds a {state.get('kind')} checkpoint; a trained network (best.pt / last.pt) is needed"
        )
    require_keys(state, ("model_args", "genotype", "model", "classes", "mean", "std", "input_size", "dataset"), path)
    try:
        args = dict(state["model_args"])
        args["auxiliary"] = False
        genotype = Genotype.from_dict(state["genotype"])
        model = build_network(genotype, **args)
        weights = {k: v for k, v in state["model"].items() if not k.startswith("auxiliary_head")}
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as exc:
        if isinstance(exc, RuntimeError) and "state_dict" not in str(exc):
            raise
        raise RunError(
            f"{path}: its weights do not fit its genotype and settings ({type(exc).__name__}); it is damaged"
        ) from None
    model.eval()
    info = ModelInfo(
        classes=list(state["classes"]),
        mean=tuple(state["mean"]),
        std=tuple(state["std"]),
        input_size=tuple(state["input_size"]),
        in_channels=int(args["in_channels"]),
        genotype=genotype,
        dataset=state["dataset"],
        model_args=args,
    )
    return model, info


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The trained network alone (``load_trained`` also gives its ``ModelInfo``); ``model.meta`` holds it as a dict."""
    model, info = load_trained(path, map_location)
    model.meta = info.as_dict()  # type: ignore[attr-defined]
    return model


FORMATS = {"onnx": "onnx", "torchscript": "pt", "exported": "pt2"}  # format -> usual file suffix


class ExportError(PCDartsError, ValueError):
    """An export that cannot be done as asked."""


CROP_DATASETS = ("imagenet", "folder")  # evaluated on a resize + centre crop; tensor datasets on whole images


def preprocessing(info: ModelInfo) -> dict[str, Any]:
    """Every step from an image file to the network's input, as ``pcdarts predict`` and ``eval`` do them.

    Written into each export, so a consumer that follows it gets the tool's answers (tested to 1e-5).
    """
    h, w = info.input_size
    steps: list[dict[str, Any]] = [
        {"op": "decode", "library": "Pillow", "convert": "L" if info.in_channels == 1 else "RGB"},
    ]
    if info.dataset in CROP_DATASETS:
        shorter = round(h * 256 / 224)
        steps += [
            {
                "op": "resize_shorter_side",
                "size": shorter,
                "interpolation": "bilinear",
                "rule": f"scale = {shorter} / min(width, height); new size = (max({h}, round(width * scale)), "
                f"max({h}, round(height * scale)))",
            },  # fmt: skip
            {"op": "centre_crop", "size": [h, w], "rule": "left = (width - size) // 2, top = (height - size) // 2"},
        ]
    else:
        steps.append({"op": "resize", "size": [h, w], "interpolation": "bilinear", "rule": "only if not already"})
    steps += [
        {"op": "to_float", "scale": 1 / 255, "rule": "pixel / 255, as float32"},
        {"op": "layout", "order": "NCHW", "channels": "grey" if info.in_channels == 1 else "RGB"},
        {"op": "normalize", "mean": list(info.mean), "std": list(info.std), "rule": "(x - mean) / std per channel"},
    ]
    return {"steps": steps, "output": "logits (softmax for probabilities)", "classes": list(info.classes)}


def _metadata(info: ModelInfo) -> dict[str, Any]:
    meta = info.as_dict()
    meta["input_shape"] = [1, info.in_channels, *info.input_size]
    meta["preprocessing"] = preprocessing(info)
    crop = "resize shorter side + centre crop (see preprocessing)" if info.dataset in CROP_DATASETS else "resize"
    meta["format_note"] = f"input: float32 NCHW after {crop}, (pixel/255 - mean) / std; output: logits"
    return meta


def export_model(
    checkpoint: str | Path, fmt: str, out: str | Path, *, check: bool = True, overwrite: bool = False
) -> dict[str, Any]:
    """Export the eval-mode network (no auxiliary head, no drop path); metadata goes inside and beside it.

    Writes two files, ``out`` and ``out.json``: each whole or not at all (written aside, then renamed), so a
    kill or a full disk leaves the earlier export intact. An existing file is replaced only with
    ``overwrite``, and a run's own files (checkpoints, logs, results) never.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder: give a file name, e.g. {out / ('model.' + FORMATS[fmt])}")
    for target in (out, Path(str(out) + ".json")):
        try:
            check_target(target, overwrite=overwrite)
        except RunError as exc:
            raise ExportError(str(exc)) from None
    model, info = load_trained(checkpoint)
    meta = _metadata(info)
    example = torch.randn(*meta["input_shape"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = {"pcdarts.json": json.dumps(meta)}
    with torch.no_grad():
        reference = model(example)
    report: dict[str, Any] = {"format": fmt, "out": str(out)}
    if fmt == "torchscript":
        with torch.no_grad():
            scripted = torch.jit.trace(model, example)
        buf = io.BytesIO()
        torch.jit.save(scripted, buf, _extra_files=extra)
        _write(out, buf.getvalue())
        if check:
            loaded = torch.jit.load(str(out))
            with torch.no_grad():
                report["max_abs_diff"] = float((loaded(example) - reference).abs().max())
    elif fmt == "exported":
        batch = torch.export.Dim("batch", min=1, max=4096)
        ep = torch.export.export(
            model, (example.expand(2, *example.shape[1:]).contiguous(),), dynamic_shapes=({0: batch},)
        )
        buf = io.BytesIO()
        torch.export.save(ep, buf, extra_files=extra)
        _write(out, buf.getvalue())
        if check:
            loaded = torch.export.load(str(out)).module()
            with torch.no_grad():
                report["max_abs_diff"] = float((loaded(example) - reference).abs().max())
    else:
        _export_onnx(model, example, out, meta)
        if check:
            report.update(check_onnx(out, example, reference))
    _write(Path(str(out) + ".json"), (json.dumps(meta, indent=2) + "\n").encode())
    return report


def _write(path: Path, data: bytes) -> None:
    """The whole file or nothing: on a full disk one line, no partial file, the earlier export intact."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ExportError(
                f"no space left to write {path} ({len(data):,} bytes); any earlier file is intact"
            ) from None
        raise


def _export_onnx(model: nn.Module, example: torch.Tensor, out: Path, meta: dict[str, Any]) -> None:
    try:
        with warnings.catch_warnings():  # the exporter's own deprecation and constant-folding notes: not the user's
            warnings.simplefilter("ignore")
            buf = io.BytesIO()
            torch.onnx.export(
                model,
                (example,),
                buf,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
    except ImportError as exc:
        raise ExportError(f"ONNX export needs the onnx extra: pip install 'pcdarts[onnx]' ({exc})") from None
    except Exception as exc:  # torch's own "Module onnx is not installed!" (OnnxExporterError) is no ImportError
        if "not installed" in str(exc) and "onnx" in str(exc).lower():
            raise ExportError(
                "ONNX export needs the onnx package: pip install 'pcdarts[onnx]' (or pip install onnx); "
                "--format torchscript works without it"
            ) from None
        raise
    try:
        import onnx
    except ImportError:
        _write(out, buf.getvalue())
        return
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    _write(out, proto.SerializeToString())


def check_onnx(path: Path, example: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """Compare onnxruntime's logits with PyTorch's when onnxruntime is installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {"onnxruntime": "not installed; install pcdarts[onnx] to check the export"}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": example.numpy()})[0]
    return {"onnxruntime": ort.__version__, "max_abs_diff": float(np.abs(got - reference.numpy()).max())}


def load_image(path: Any, in_channels: int, size: tuple[int, int], centre_crop: bool = False) -> torch.Tensor:
    """Decode with Pillow to (C, H, W) floats in [0, 1] as evaluation does; ``path`` may be a PIL image.

    Image-folder models were evaluated on a resize + centre crop, tensor datasets on whole images resized.
    """
    from PIL import Image, UnidentifiedImageError

    from .data.images import as_8bit, open_image
    from .data.images import centre_crop as crop_centre

    try:
        im = as_8bit(path, in_channels) if isinstance(path, Image.Image) else open_image(path, in_channels)
        if centre_crop:
            im = crop_centre(im, size[0])
        elif im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise ExportError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ExportError(f"cannot decode image {path}: {exc}") from None
    t = torch.from_numpy(arr)
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1)


def predict_tensor(model: nn.Module, info: ModelInfo, images: torch.Tensor, top_k: int = 3) -> list[dict[str, Any]]:
    """Top-k classes of images already decoded to (N, C, H, W) floats in [0, 1] at the model's input size.

    ``model, info = pcdarts.load_trained(run)``; the normalisation is applied here, as in ``predict``.
    """
    if top_k < 1:
        raise ConfigError(f"top-k must be >= 1, got {top_k}")
    if images.dim() != 4 or images.shape[1] != info.in_channels or tuple(images.shape[-2:]) != tuple(info.input_size):
        raise ExportError(
            f"images must be (N, {info.in_channels}, {info.input_size[0]}, {info.input_size[1]}) floats in [0, 1], "
            f"got {tuple(images.shape)}"
        )
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    with torch.no_grad():
        probs = torch.softmax(model((images.float() - mean) / std), dim=1)
    top = probs.topk(min(top_k, probs.shape[1]), dim=1)
    return [
        {"top": [{"class": info.classes[i], "probability": float(v)} for v, i in zip(vals.tolist(), idx.tolist())]}
        for vals, idx in zip(top.values, top.indices)
    ]


def predict(
    checkpoint: str | Path,
    images: list[str],
    top_k: int = 3,
    *,
    on_error: Callable[[str, Exception], None] | None = None,
) -> list[dict[str, Any]]:
    """Top-k classes with probabilities per image, with the evaluation preprocessing.

    With ``on_error``, an image that cannot be read is reported to it and skipped; without, it raises.
    """
    if top_k < 1:
        raise ConfigError(f"top-k must be >= 1, got {top_k}")
    model, info = load_trained(checkpoint)
    cin, size = info.in_channels, info.input_size
    crop = info.dataset in CROP_DATASETS
    good, tensors = [], []
    for p in images:
        try:
            tensors.append(load_image(p, cin, size, crop))
            good.append(p)
        except (ExportError, DataError) as exc:  # one unreadable file fails alone
            if on_error is None:
                raise
            on_error(p, exc)
    if not good:
        return []
    rows = predict_tensor(model, info, torch.stack(tensors), top_k)
    return [{"image": str(p), **row} for p, row in zip(good, rows)]
