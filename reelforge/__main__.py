from reelforge.cli.main import main

raise SystemExit(main())
