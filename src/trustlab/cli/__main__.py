"""``python -m trustlab.cli``."""

from trustlab.cli import main

main()
