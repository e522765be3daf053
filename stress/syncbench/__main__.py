"""`python -m stress.syncbench` (the same as `python -m stress.sync_bench`)."""

from stress.syncbench.cli import main

raise SystemExit(main())
