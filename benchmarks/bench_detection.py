"""Rows for the detection chapter: the box ops against torchvision.ops, the COCO evaluation
against pycocotools, and the quality of the two detectors the chapter trains."""

from __future__ import annotations

import contextlib
import io
from typing import Dict, List

import numpy as np
import torch

from benchmarks.harness import Measure, SpeedCase, quality_row, speed_row
from course_lib import detection as det

STATS = [
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
]  # fmt: skip


def _torchvision_ops():
    try:
        import torchvision.ops as tv_ops
    except ImportError:
        return None
    return tv_ops


def random_boxes(n: int, device: torch.device, seed: int = 0, kind: str = "dense") -> torch.Tensor:
    """Boxes [n, 4]: ``dense`` overlap a lot (as in torchvision's benchmarks), ``sparse`` rarely."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "dense":
        boxes = torch.rand(n, 4, generator=generator) * 100
        boxes[:, 2:] += boxes[:, :2]
    else:
        corner = torch.rand(n, 2, generator=generator) * 1000
        boxes = torch.cat([corner, corner + 10 + torch.rand(n, 2, generator=generator) * 40], 1)
    return boxes.to(device)


@speed_row("box_iou", peer="torchvision.ops.box_iou", target="<= 1.1x")
def box_iou_rows(device: torch.device, quick: bool):
    tv_ops = _torchvision_ops()
    for n, m in [(100, 100)] if quick else [(100, 100), (1000, 1000), (10000, 1000)]:
        a, b = random_boxes(n, device, 1), random_boxes(m, device, 2)
        yield SpeedCase(
            f"{n}x{m}",
            ours=lambda a=a, b=b: det.box_iou(a, b),
            peer=(lambda a=a, b=b: tv_ops.box_iou(a, b)) if tv_ops else None,
        )


@speed_row("nms", peer="torchvision.ops.nms", target="identical keeps; <= 10x CPU, <= 1.2x GPU")
def nms_rows(device: torch.device, quick: bool):
    tv_ops = _torchvision_ops()
    sizes = (
        [(100, "dense")]
        if quick
        else [(100, "dense"), (1000, "dense"), (5000, "dense"), (10000, "dense"), (10000, "sparse")]
    )
    for n, kind in sizes:
        boxes = random_boxes(n, device, n, kind)
        scores = torch.rand(n, generator=torch.Generator().manual_seed(n)).to(device)
        yield SpeedCase(
            f"N={n} ({kind})",
            ours=lambda b=boxes, s=scores: det.nms(b, s, 0.5),
            peer=(lambda b=boxes, s=scores: tv_ops.nms(b, s, 0.5)) if tv_ops else None,
        )


@speed_row("batched_nms", peer="torchvision.ops.batched_nms", target="identical keeps; <= 10x CPU")
def batched_nms_rows(device: torch.device, quick: bool):
    tv_ops = _torchvision_ops()
    for n in [100] if quick else [100, 1000, 5000, 10000]:
        generator = torch.Generator().manual_seed(n)
        boxes = random_boxes(n, device, n + 1)
        scores = torch.rand(n, generator=generator).to(device)
        idxs = torch.randint(0, 10, (n,), generator=generator).to(device)
        yield SpeedCase(
            f"N={n}, 10 classes",
            ours=lambda b=boxes, s=scores, i=idxs: det.batched_nms(b, s, i, 0.5),
            peer=(lambda b=boxes, s=scores, i=idxs: tv_ops.batched_nms(b, s, i, 0.5))
            if tv_ops
            else None,
        )


def _rois(k: int, num_images: int, device: torch.device, image_size: float = 800.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(k)
    corner = torch.rand(k, 2, generator=generator) * image_size * 0.8
    size = 16 + torch.rand(k, 2, generator=generator) * image_size * 0.3
    batch = torch.randint(0, num_images, (k, 1), generator=generator).float()
    return torch.cat([batch, corner, corner + size], 1).to(device)


def _book_rois(k: int, num_images: int, device: torch.device, sizes=(12.0, 26.0)) -> torch.Tensor:
    """RoIs like the chapter's on 64 x 64 shapes images: sides of 12 to 26 pixels."""
    generator = torch.Generator().manual_seed(k)
    corner = torch.rand(k, 2, generator=generator) * (64 - sizes[1])
    side = sizes[0] + torch.rand(k, 1, generator=generator) * (sizes[1] - sizes[0])
    batch = torch.randint(0, num_images, (k, 1), generator=generator).float()
    return torch.cat([batch, corner, corner + side], 1).to(device)


#: (label, RoIs, images, channels, map size, output size, spatial scale) of the chapter's
#: models: Fast R-CNN training (16 images x 32 sampled regions, plus the true boxes) and
#: inference (64 images x 440 sliding windows), Faster R-CNN inference (64 x 32 proposals),
#: and R-CNN's 20 x 20 crops of the pixels.
BOOK_ROI_SIZES = [
    ("Fast R-CNN training", 544, 16, 32, 16, 5, 0.25),
    ("Faster R-CNN inference", 2048, 64, 64, 16, 5, 0.25),
    ("Fast R-CNN inference", 28160, 64, 32, 16, 5, 0.25),
    ("R-CNN crops", 544, 16, 3, 64, 20, 1.0),
]


def _roi_call(op: str, library, features, rois, size: int, scale: float, backward: bool):
    if op == "roi_align":  # sampling_ratio=2, aligned=True: the chapter's settings

        def forward(x):
            return library.roi_align(x, rois, size, scale, 2, True)
    else:

        def forward(x):
            return library.roi_pool(x, rois, size, scale)

    if not backward:
        return lambda: forward(features)
    leaf = features.detach().requires_grad_()
    return lambda: torch.autograd.grad(forward(leaf).sum(), leaf)[0]


def _roi_cases(device: torch.device, quick: bool, op: str):
    tv_ops = _torchvision_ops()
    channels = 16 if quick else 256
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, channels, 50, 50, generator=generator).to(device)
    cases = [(f"{k} RoIs, [2, {channels}, 50, 50] -> 7x7", features, _rois(k, 2, device), 7,
              1 / 16, False) for k in ([100] if quick else [100, 512, 2000])]  # fmt: skip
    for label, k, images, chans, side, size, scale in [] if quick else BOOK_ROI_SIZES:
        if op == "roi_pool" and label == "R-CNN crops":
            continue  # R-CNN warps its crops with RoI Align
        maps = torch.randn(images, chans, side, side, generator=generator).to(device)
        rois = _book_rois(k, images, device)
        name = f"book: {label}, {k} RoIs, [{images}, {chans}, {side}, {side}] -> {size}x{size}"
        cases.append((name, maps, rois, size, scale, False))
        if label == "Fast R-CNN training":
            cases.append((name + ", forward + backward", maps, rois, size, scale, True))
    for name, maps, rois, size, scale, backward in cases:
        yield SpeedCase(
            name,
            ours=_roi_call(op, det, maps, rois, size, scale, backward),
            peer=_roi_call(op, tv_ops, maps, rois, size, scale, backward) if tv_ops else None,
        )


@speed_row(
    "roi_align",
    peer="torchvision.ops.roi_align",
    target="within 1e-5; CPU <= 1.0x at the book's sizes, <= 1.5x elsewhere; <= 5x GPU kernel",
)
def roi_align_rows(device: torch.device, quick: bool):
    yield from _roi_cases(device, quick, "roi_align")


@speed_row(
    "roi_pool",
    peer="torchvision.ops.roi_pool",
    target="within 1e-5; CPU <= 1.0x at the book's sizes, <= 1.5x elsewhere; <= 5x GPU kernel",
)
def roi_pool_rows(device: torch.device, quick: bool):
    yield from _roi_cases(device, quick, "roi_pool")


def _detection_set(num_images: int, per_image: int, num_classes: int = 5, seed: int = 0):
    """Ground truth (2-8 boxes per image) and ``per_image`` jittered or random detections."""
    rng = np.random.default_rng(seed)
    predictions, targets = [], []
    for _ in range(num_images):
        m = int(rng.integers(2, 9))
        corner = rng.uniform(0, 500, (m, 2))
        gt = np.concatenate([corner, corner + rng.uniform(8, 200, (m, 2))], 1)
        gt_labels = rng.integers(0, num_classes, m)
        source = rng.integers(0, m, per_image)
        boxes = gt[source] + rng.normal(0, 8, (per_image, 4))
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.where(
            rng.uniform(size=per_image) < 0.2,
            rng.integers(0, num_classes, per_image),
            gt_labels[source],
        )
        predictions.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "scores": torch.tensor(rng.uniform(size=per_image), dtype=torch.float32),
                "labels": torch.tensor(labels),
            }
        )
        targets.append(
            {"boxes": torch.tensor(gt, dtype=torch.float32), "labels": torch.tensor(gt_labels)}
        )
    return predictions, targets


def coco_evaluator(predictions: List[Dict], targets: List[Dict]):
    """pycocotools' ``COCOeval`` run on our per-image dicts (boxes converted to xywh); the
    tests compare ``evaluate_detections`` with it too."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    annotations, results = [], []
    for image_id, (prediction, target) in enumerate(zip(predictions, targets), start=1):
        gt = det.box_convert(target["boxes"].double(), "xyxy", "xywh").tolist()
        for box, label in zip(gt, target["labels"].tolist()):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
        boxes = det.box_convert(prediction["boxes"].double(), "xyxy", "xywh").tolist()
        for box, score, label in zip(
            boxes, prediction["scores"].tolist(), prediction["labels"].tolist()
        ):
            results.append(
                {"image_id": image_id, "category_id": label, "bbox": box, "score": score}
            )
    coco = COCO()
    categories = sorted(
        {a["category_id"] for a in annotations} | {r["category_id"] for r in results}
    )
    coco.dataset = {
        "images": [{"id": i + 1} for i in range(len(targets))],
        "annotations": annotations,
        "categories": [{"id": c} for c in categories],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _pycocotools_stats(predictions: List[Dict], targets: List[Dict]) -> torch.Tensor:
    """The twelve COCOeval numbers, starting from the same tensors (conversion included)."""
    return torch.tensor(coco_evaluator(predictions, targets).stats, dtype=torch.float64)


def _our_stats(predictions: List[Dict], targets: List[Dict]) -> torch.Tensor:
    result = det.evaluate_detections(predictions, targets)
    return torch.tensor([result[name] for name in STATS], dtype=torch.float64)


@speed_row(
    "evaluate_detections",
    peer="pycocotools COCOeval (from tensors)",
    target="within 1e-6; CPU <= 1x at 500 images x 100",
)
def evaluate_rows(device: torch.device, quick: bool):
    try:
        import pycocotools  # noqa: F401

        has_peer = True
    except ImportError:
        has_peer = False
    for num_images in [20] if quick else [50, 500]:
        predictions, targets = _detection_set(num_images, 100)
        yield SpeedCase(
            f"{num_images} images x 100 detections, 5 classes",
            ours=lambda p=predictions, t=targets: _our_stats(p, t),
            peer=(lambda p=predictions, t=targets: _pycocotools_stats(p, t)) if has_peer else None,
        )


def _train_and_evaluate(
    model: torch.nn.Module, device: torch.device, quick: bool, steps: int
) -> List[Measure]:
    from course_lib.data import ShapesDataset
    from course_lib.train import fit

    train_images, train_targets = det.shapes_tensors(ShapesDataset(64 if quick else 1500, seed=1))
    test_images, test_targets = det.shapes_tensors(ShapesDataset(32 if quick else 300, seed=2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 2e-3, total_steps=steps, pct_start=0.15
    )
    history = fit(
        model,
        det.random_batches(train_images, train_targets, 8 if quick else 16, seed=2),
        steps=steps,
        optimizer=optimizer,
        scheduler=schedule,
        device=device,
        progress=False,
        live_plot=False,
    )
    result = det.evaluate_detections(det.predict(model, test_images), test_targets)
    note = (
        f"{steps} steps, {history.seconds:.0f} s training on {device.type}; held-out shapes images"
    )
    return [
        Measure("mAP@0.5", result["map_50"], bar="" if quick else ">= 0.90", notes=note),
        Measure("COCO mAP@[.5:.95]", result["map"], notes=note),
    ]


@quality_row("detection", "two-stage detector (Faster R-CNN)")
def two_stage_quality(device: torch.device, quick: bool) -> List[Measure]:
    torch.manual_seed(0)
    return _train_and_evaluate(det.FasterRCNN(channels=64), device, quick, 8 if quick else 300)


@quality_row("detection", "one-stage detector")
def one_stage_quality(device: torch.device, quick: bool) -> List[Measure]:
    torch.manual_seed(0)
    return _train_and_evaluate(
        det.OneStageDetector(channels=64), device, quick, 8 if quick else 300
    )
