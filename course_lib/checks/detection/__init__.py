"""Checks for the exercises of the object-detection chapter.

Each check compares the student's function with ``course_lib.detection`` on random inputs
and edge cases (empty inputs, one box, identical boxes, ties, an IoU exactly at the
threshold, boxes outside the feature map), in float64 and then float32. When a check
fails, the hint names the classic mistake if the student's output matches it: each
``_MISTAKES`` entry is a known wrong version of the function, run on the failing case.
Calling the library's or torchvision's version of the exercise is rejected.

The checks live in three modules by topic: ``boxes`` (IoU, box encoding and decoding, NMS),
``roi`` (RoI Pool and RoI Align for one region) and ``evaluation`` (matching detections,
average precision); all are importable from here, e.g. ``checks.detection.check_nms``.
"""

from course_lib.checks.detection.boxes import (
    check_box_iou,
    check_decode_boxes,
    check_encode_boxes,
    check_nms,
)
from course_lib.checks.detection.evaluation import check_average_precision, check_match_detections
from course_lib.checks.detection.roi import check_roi_align_one, check_roi_pool_one

__all__ = [
    "check_average_precision",
    "check_box_iou",
    "check_decode_boxes",
    "check_encode_boxes",
    "check_match_detections",
    "check_nms",
    "check_roi_align_one",
    "check_roi_pool_one",
]
