"""The `autotrader` command line (typer). Each command group lives in its own module and adds
itself to the app through `register(app)`; heavy imports happen inside the commands."""
