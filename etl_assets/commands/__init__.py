"""The work behind the larger `etl` commands (watch, doctor); `etl_assets/cli.py` holds their
click definitions and turns what these modules return into tables or JSON."""
