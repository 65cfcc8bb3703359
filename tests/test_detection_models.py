"""The detectors of course_lib.detection.models: shapes, losses, a training signal, images with
no objects, configs; and the data helpers that feed them (shapes_tensors, random_batches)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from course_lib import detection as det
from course_lib.data import ShapesDataset

DETECTORS = ["rcnn", "fast", "fast-pool", "faster", "one"]


def build(name: str) -> torch.nn.Module:
    windows = det.sliding_window_proposals(64)
    return {
        "rcnn": lambda: det.RCNN(windows, channels=8),
        "fast": lambda: det.FastRCNN(windows, channels=8),
        "fast-pool": lambda: det.FastRCNN(windows, channels=8, pool="pool"),
        "faster": lambda: det.FasterRCNN(channels=16),
        "one": lambda: det.OneStageDetector(channels=16),
    }[name]()


@pytest.fixture(scope="module")
def shapes_batch():
    return det.shapes_tensors(ShapesDataset(8, seed=0))


def check_detections(detections, num_images: int, size: int = 64) -> None:
    assert len(detections) == num_images
    for d in detections:
        n = d["boxes"].shape[0]
        assert d["boxes"].shape == (n, 4) and d["scores"].shape == d["labels"].shape == (n,)
        assert n <= 100 and d["labels"].dtype == torch.int64
        assert (d["boxes"] >= 0).all() and (d["boxes"] <= size).all()
        assert (d["scores"][1:] <= d["scores"][:-1]).all()  # best first


@pytest.mark.parametrize("name", DETECTORS)
def test_detectors_train_and_detect(device, name, shapes_batch):
    torch.manual_seed(0)
    images, targets = shapes_batch
    model = build(name).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images = images.to(device)
    losses = []
    for _ in range(8):
        parts, loss = model(images, targets)
        assert loss.dim() == 0 and torch.isfinite(loss)
        assert all(torch.isfinite(v) for v in parts.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    check_detections(det.predict(model, images.cpu()), len(images))


@pytest.mark.parametrize("name", DETECTORS)
def test_detectors_train_and_infer_on_images_with_no_objects(name, shapes_batch):
    """A training image with no object is normal; a batch of them too."""
    torch.manual_seed(0)
    images, targets = shapes_batch
    empty = ShapesDataset(4, min_objects=0, max_objects=0, seed=3)
    blank_images, blank_targets = det.shapes_tensors(empty)
    assert all(t["boxes"].shape == (0, 4) for t in blank_targets)
    model = build(name)
    mixed = (torch.cat([images[:4], blank_images[:2]]), targets[:4] + blank_targets[:2])
    for batch_images, batch_targets in [mixed, (blank_images, blank_targets)]:
        parts, loss = model(batch_images, batch_targets)
        assert torch.isfinite(loss) and all(torch.isfinite(v) for v in parts.values())
        loss.backward()
    check_detections(det.predict(model, blank_images), len(blank_images))


def test_single_object_detector(shapes_batch):
    images, targets = det.shapes_tensors(ShapesDataset(4, min_objects=1, max_objects=1, seed=0))
    model = det.SingleObjectDetector(box_weight=10.0, channels=8)
    output, loss = model(images, targets)
    assert output["logits"].shape == (4, 3) and output["boxes"].shape == (4, 4)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert model(images)[1] is None
    with pytest.raises(ValueError, match="exactly one object"):
        model(*shapes_batch)


CONFIGS = [
    (det.SingleObjectDetector, det.SingleObjectConfig, ()),
    (det.RCNN, det.RCNNConfig, (det.sliding_window_proposals(64),)),
    (det.FastRCNN, det.FastRCNNConfig, (det.sliding_window_proposals(64),)),
    (det.FasterRCNN, det.FasterRCNNConfig, ()),
    (det.OneStageDetector, det.OneStageConfig, ()),
]


@pytest.mark.parametrize("model_class, config_class, args", CONFIGS)
def test_a_config_and_keywords_build_the_same_model(model_class, config_class, args):
    torch.manual_seed(0)
    from_keywords = model_class(*args, channels=8, num_classes=2)
    torch.manual_seed(0)
    from_config = model_class(*args, config_class(channels=8, num_classes=2))
    assert from_keywords.config == from_config.config == config_class(channels=8, num_classes=2)
    for a, b in zip(from_keywords.state_dict().values(), from_config.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(TypeError, match="chanels"):
        model_class(*args, chanels=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        from_config.config.channels = 4  # type: ignore[misc]


def test_configs_hold_the_constants_the_models_use():
    faster = det.FasterRCNN(
        channels=8, rpn=det.RPNConfig(anchor_sizes=(8.0, 16.0), aspect_ratios=(0.5, 1.0, 2.0))
    )
    assert faster.rpn.num_anchors == 6 and faster.rpn.anchors.shape == (16 * 16 * 6, 4)
    one = det.OneStageDetector(channels=8, prior=0.1, num_classes=2)
    assert torch.sigmoid(one.classifier.bias).allclose(torch.tensor(0.1))
    assert det.FastRCNN(None, det.FastRCNNConfig(pool_size=3, channels=4)).head.in_features == 36
    with pytest.raises(ValueError, match="negative_iou"):
        det.RPNConfig(positive_iou=0.3, negative_iou=0.7)
    with pytest.raises(TypeError, match="rpn"):
        det.FasterRCNNConfig(rpn={"pre_nms": 10})
    with pytest.raises(TypeError, match="config"):
        det.OneStageDetector(det.RCNNConfig())


def test_region_head_and_postprocess_regions():
    head = det.RegionHead(8, 3)
    logits, deltas = head(torch.randn(5, 2, 2, 2))
    assert logits.shape == (5, 4) and deltas.shape == (5, 3, 4)
    regions = [torch.tensor([[0.0, 0, 10, 10]] * 2), torch.tensor([[5.0, 5, 30, 30]] * 3)]
    detections = det.postprocess_regions(logits, deltas, regions, (32, 32), score_threshold=0.0)
    check_detections(detections, 2, size=32)
    assert det.postprocess_regions(logits[:0], deltas[:0], [], (32, 32)) == []


def test_sliding_window_proposals():
    windows = det.sliding_window_proposals(64, sizes=(12, 18, 26), stride=4)
    assert windows.shape == (14 * 14 + 12 * 12 + 10 * 10, 4)
    assert (windows >= 0).all() and (windows <= 64).all()
    assert det.sliding_window_proposals(16, (16,), 4).tolist() == [[0.0, 0.0, 16.0, 16.0]]


def test_random_batches_flip_keeps_boxes_on_the_shapes(shapes_batch):
    images, targets = shapes_batch
    next_batch = det.random_batches(images, targets, 4, flip=True, seed=0)
    for _ in range(4):
        batch_images, batch_targets = next_batch()
        assert batch_images.shape == (4, 3, 64, 64) and len(batch_targets) == 4
        for image, target in zip(batch_images, batch_targets):
            for box in target["boxes"].round().long().tolist():
                x1, y1, x2, y2 = box
                inside = image[:, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1]
                assert (inside - image.mean()).abs().amax() > 0.1  # the shape is under its box


def test_random_batches_are_reproducible(shapes_batch):
    images, targets = shapes_batch
    first = det.random_batches(images, targets, 3, seed=5)
    second = det.random_batches(images, targets, 3, seed=5)
    for _ in range(3):
        (a, ta), (b, tb) = first(), second()
        assert torch.equal(a, b) and all(
            torch.equal(x["boxes"], y["boxes"]) for x, y in zip(ta, tb)
        )


def test_predict_restores_the_training_mode():
    model = det.OneStageDetector(channels=8)
    model.train()
    detections = det.predict(model, torch.rand(3, 3, 64, 64), batch_size=2)
    assert model.training and len(detections) == 3
    assert all(d["boxes"].device.type == "cpu" for d in detections)
