import sys

from .start import leave, spawned_slave

code = spawned_slave(sys.argv[1:])
if code is not None:
    leave(code)

from .cli import main  # noqa: E402 - every other command line is parsed by click

main()
