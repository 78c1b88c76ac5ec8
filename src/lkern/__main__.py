"""``python -m lkern`` is the ``lkern`` command."""

from lkern.cli import main

main()
