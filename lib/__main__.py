import sys

try:
    from lib.cli import main
except KeyboardInterrupt:  # (Ctrl-C while the modules load: nothing begun, no traceback)
    print("interrupted: nothing was stored", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
