"""`python -m bench`: fargo beside podman and bare runc; see bench/run.py and docs/benchmarks.md."""

import sys

from .run import main

sys.exit(main())
