"""Object detection: boxes, NMS, RoI pooling, anchors, COCO evaluation and small detectors.

Read it beside the chapter, module by module, in the order of the chapter:

- ``boxes``: area, IoU (the one IoU of the library), formats, clipping, the R-CNN box
  transform (``encode_boxes`` / ``decode_boxes``);
- ``nms``: non-maximum suppression (``nms``, ``batched_nms``);
- ``roi``: RoI Pool and RoI Align;
- ``anchors``: anchors, matching them to objects, sampling them for the loss;
- ``evaluation``: matching detections, precision-recall, AP and COCO mAP;
- ``targets``: the per-image target dicts and training batches of the shapes images;
- ``models``: the detectors, one file per family, each with a config dataclass.

The ops keep the signatures and results of ``torchvision.ops`` of the same name, written
in plain, vectorised PyTorch that runs on the CPU, CUDA and MPS. Boxes are float
``(x1, y1, x2, y2)`` in pixels with continuous coordinates (no +1), as in torchvision.
Every name below is importable from ``course_lib.detection`` itself.
"""

from course_lib.detection.anchors import generate_anchors, match_anchors, sample_labels
from course_lib.detection.boxes import (
    BOX_FORMATS,
    BOX_SCALE_CLAMP,
    box_area,
    box_convert,
    box_iou,
    clip_boxes_to_image,
    decode_boxes,
    encode_boxes,
    generalized_box_iou,
    remove_small_boxes,
)
from course_lib.detection.evaluation import (
    AP_METHODS,
    COCO_AREA_RANGES,
    COCO_IOU_THRESHOLDS,
    COCO_MAX_DETECTIONS,
    COCO_RECALL_THRESHOLDS,
    average_precision,
    evaluate_detections,
    match_detections,
    precision_recall_curve,
)
from course_lib.detection.models import (
    RCNN,
    REGION_BOX_WEIGHTS,
    ConvBackbone,
    FasterRCNN,
    FasterRCNNConfig,
    FastRCNN,
    FastRCNNConfig,
    OneStageConfig,
    OneStageDetector,
    RCNNConfig,
    RegionConfig,
    RegionDetector,
    RegionHead,
    RegionProposalNetwork,
    RPNConfig,
    SingleObjectConfig,
    SingleObjectDetector,
    postprocess_regions,
    predict,
    sigmoid_focal_loss,
    sliding_window_proposals,
)
from course_lib.detection.nms import batched_nms, nms
from course_lib.detection.roi import roi_align, roi_pool
from course_lib.detection.targets import check_targets, random_batches, shapes_tensors

# Private helpers whose source the chapter shows (``show_source(det._nms_sorted)``).
from course_lib.detection.nms import _nms_sorted  # noqa: F401  isort: skip
from course_lib.detection.roi import _sampling_weights  # noqa: F401  isort: skip

__all__ = [
    "AP_METHODS",
    "BOX_FORMATS",
    "BOX_SCALE_CLAMP",
    "COCO_AREA_RANGES",
    "COCO_IOU_THRESHOLDS",
    "COCO_MAX_DETECTIONS",
    "COCO_RECALL_THRESHOLDS",
    "RCNN",
    "REGION_BOX_WEIGHTS",
    "ConvBackbone",
    "FastRCNN",
    "FastRCNNConfig",
    "FasterRCNN",
    "FasterRCNNConfig",
    "OneStageConfig",
    "OneStageDetector",
    "RCNNConfig",
    "RPNConfig",
    "RegionConfig",
    "RegionDetector",
    "RegionHead",
    "RegionProposalNetwork",
    "SingleObjectConfig",
    "SingleObjectDetector",
    "average_precision",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "check_targets",
    "clip_boxes_to_image",
    "decode_boxes",
    "encode_boxes",
    "evaluate_detections",
    "generalized_box_iou",
    "generate_anchors",
    "match_anchors",
    "match_detections",
    "nms",
    "postprocess_regions",
    "precision_recall_curve",
    "predict",
    "random_batches",
    "remove_small_boxes",
    "roi_align",
    "roi_pool",
    "sample_labels",
    "shapes_tensors",
    "sigmoid_focal_loss",
    "sliding_window_proposals",
]
