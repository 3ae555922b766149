from fogd.cli import main

raise SystemExit(main())
