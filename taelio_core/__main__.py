"""``python -m taelio_core`` is the ``taelio`` command."""
from taelio_core.cli import main

raise SystemExit(main())
