from robustrl.cli import main

raise SystemExit(main())
