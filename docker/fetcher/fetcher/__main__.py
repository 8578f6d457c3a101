import os
import signal
import sys

from fetcher.cli import main

# ECS stops containers with SIGTERM: unwind like Ctrl-C, so that the log ends with one line
# saying so, instead of the process vanishing mid-line.
signal.signal(signal.SIGTERM, signal.default_int_handler)
code = main()
if code:
    # After a failure, download threads may still be draining a chunk; the fetcher is safe to
    # kill at any point by design, so exit now instead of joining them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
raise SystemExit(code)
