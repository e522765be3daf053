"""`python -m stress.sync_bench [--quick] [--only NAME] [--scale N,N]`: the sync benchmark.

The code lives in the stress/syncbench/ package; this name is the documented command.
"""

from stress.syncbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
