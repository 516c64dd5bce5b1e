import signal
import sys

# A SIGTERM while the service is still importing or starting: nothing is in flight yet, so
# it is an orderly stop (status 0); serve() takes over with the graceful path.
signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(0))

from slot_allocator.app import main  # noqa: E402 - after the handler: imports are slow

main()
