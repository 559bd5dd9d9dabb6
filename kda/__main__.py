from kda.cli import main

raise SystemExit(main())
