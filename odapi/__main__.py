from odapi.cli import main

raise SystemExit(main())
