"""`python -m mockregistry serve ...`, the same as `ocync-mockregistry serve ...`."""

import sys

from .cli import main

sys.exit(main())
