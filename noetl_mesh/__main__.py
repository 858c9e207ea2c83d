"""`python -m noetl_mesh`: the launcher CLI."""

from noetl_mesh.cli import main

raise SystemExit(main())
