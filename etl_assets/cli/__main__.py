"""`python -m etl_assets.cli`: the `etl` command."""

import sys

from etl_assets.cli import main

sys.exit(main())
