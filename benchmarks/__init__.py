"""Speed and quality benchmarks of course_lib against peer libraries.

Run ``python -m benchmarks --device cpu`` (or ``cuda``); ``--quick`` uses tiny sizes to
prove the harness works. Rows live in ``benchmarks/bench_<topic>.py``.
"""
