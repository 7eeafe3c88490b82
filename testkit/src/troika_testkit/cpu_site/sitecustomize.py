"""Arms :mod:`troika_testkit.cpu_sampler` in every Python process started with this folder on
``PYTHONPATH`` and ``CPU_SAMPLES`` set (``make profile`` starts the stack so)."""

import os

if os.environ.get("CPU_SAMPLES"):
    from troika_testkit.cpu_sampler import arm_from_environment

    arm_from_environment()
