from tripwire.cli import main

raise SystemExit(main())
