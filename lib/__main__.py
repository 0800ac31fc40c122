import sys

try:
    from lib.cli import main

    status = main()
except KeyboardInterrupt:
    # Ctrl-C while the modules load or the command line is read (main() ends a command's own
    # Ctrl-C, saying what was kept): nothing begun, no traceback
    print("interrupted: nothing was stored", file=sys.stderr)
    sys.exit(130)

sys.exit(status)
