"""The detectors of the chapter, one file per family, each with a config dataclass.

``single_object`` (classification + box regression), ``rcnn`` (sliding windows warped and
classified one by one), ``fast_rcnn`` (crop from a shared feature map), ``faster_rcnn``
(regions from an RPN), ``one_stage`` (classes and boxes straight from anchors); ``region``
holds the per-region stage the R-CNN family shares and ``common`` what all of them share.
"""

from course_lib.detection.models.common import ConvBackbone, predict
from course_lib.detection.models.fast_rcnn import FastRCNN, FastRCNNConfig
from course_lib.detection.models.faster_rcnn import (
    FasterRCNN,
    FasterRCNNConfig,
    RegionProposalNetwork,
    RPNConfig,
)
from course_lib.detection.models.one_stage import (
    OneStageConfig,
    OneStageDetector,
    sigmoid_focal_loss,
)
from course_lib.detection.models.rcnn import RCNN, RCNNConfig, sliding_window_proposals
from course_lib.detection.models.region import (
    REGION_BOX_WEIGHTS,
    RegionConfig,
    RegionDetector,
    RegionHead,
    postprocess_regions,
)
from course_lib.detection.models.single_object import SingleObjectConfig, SingleObjectDetector

__all__ = [
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
    "postprocess_regions",
    "predict",
    "sigmoid_focal_loss",
    "sliding_window_proposals",
]
