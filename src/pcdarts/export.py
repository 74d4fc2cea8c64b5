"""Ship a trained network: ONNX / TorchScript / torch.export files with metadata, and prediction."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import PCDartsError
from .train import ModelInfo, load_trained

log = logging.getLogger(__name__)

FORMATS = {"onnx": "onnx", "torchscript": "pt", "exported": "pt2"}  # format -> usual file suffix


class ExportError(PCDartsError, ValueError):
    """An export that cannot be done as asked."""


def _metadata(info: ModelInfo) -> dict[str, Any]:
    meta = info.as_dict()
    meta["input_shape"] = [1, info.in_channels, *info.input_size]
    meta["format_note"] = "input: float32 NCHW, (pixel/255 - mean) / std; output: logits"
    return meta


def export_model(checkpoint: str | Path, fmt: str, out: str | Path, *, check: bool = True) -> dict[str, Any]:
    """Export the eval-mode network (no auxiliary head, no drop path); metadata goes inside and beside it."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder: give a file name, e.g. {out / ('model.' + FORMATS[fmt])}")
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
        torch.jit.save(scripted, str(out), _extra_files=extra)
        if check:
            loaded = torch.jit.load(str(out))
            with torch.no_grad():
                report["max_abs_diff"] = float((loaded(example) - reference).abs().max())
    elif fmt == "exported":
        batch = torch.export.Dim("batch", min=1, max=4096)
        ep = torch.export.export(
            model, (example.expand(2, *example.shape[1:]).contiguous(),), dynamic_shapes=({0: batch},)
        )
        torch.export.save(ep, str(out), extra_files=extra)
        if check:
            loaded = torch.export.load(str(out)).module()
            with torch.no_grad():
                report["max_abs_diff"] = float((loaded(example) - reference).abs().max())
    else:
        _export_onnx(model, example, out, meta)
        if check:
            report.update(check_onnx(out, example, reference))
    Path(str(out) + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    return report


def _export_onnx(model: nn.Module, example: torch.Tensor, out: Path, meta: dict[str, Any]) -> None:
    try:
        with warnings.catch_warnings():  # the exporter's own deprecation and constant-folding notes: not the user's
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(out),
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
    except ImportError as exc:
        raise ExportError(f"ONNX export needs the onnx extra: pip install 'pcdarts[onnx]' ({exc})") from None
    try:
        import onnx
    except ImportError:
        return
    proto = onnx.load(str(out))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(proto, str(out))


def check_onnx(path: Path, example: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """Compare onnxruntime's logits with PyTorch's when onnxruntime is installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {"onnxruntime": "not installed; install pcdarts[onnx] to check the export"}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": example.numpy()})[0]
    return {"onnxruntime": ort.__version__, "max_abs_diff": float(np.abs(got - reference.numpy()).max())}


def load_image(path: str | Path, in_channels: int, size: tuple[int, int], centre_crop: bool = False) -> torch.Tensor:
    """Decode with Pillow to (C, H, W) floats in [0, 1] as evaluation does.

    Image-folder models were evaluated on a resize + centre crop, tensor datasets on whole images resized.
    """
    from PIL import Image, UnidentifiedImageError

    from .data.folder import centre_crop as crop_centre

    try:
        with Image.open(path) as im:
            im = im.convert("L" if in_channels == 1 else "RGB")
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
    model, info = load_trained(checkpoint)
    cin, size = info.in_channels, info.input_size
    crop = info.dataset in ("imagenet", "folder")
    good, tensors = [], []
    for p in images:
        try:
            tensors.append(load_image(p, cin, size, crop))
            good.append(p)
        except ExportError as exc:
            if on_error is None:
                raise
            on_error(p, exc)
    if not good:
        return []
    x = torch.stack(tensors)  # (N, C, H, W)
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    with torch.no_grad():
        probs = torch.softmax(model((x - mean) / std), dim=1)
    k = min(top_k, probs.shape[1])
    top = probs.topk(k, dim=1)
    classes = info.classes
    return [
        {
            "image": str(p),
            "top": [{"class": classes[i], "probability": float(v)} for v, i in zip(vals.tolist(), idx.tolist())],
        }
        for p, vals, idx in zip(good, top.values, top.indices)
    ]
