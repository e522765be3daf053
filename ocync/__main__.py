from ocync.cli.main import main

raise SystemExit(main())
