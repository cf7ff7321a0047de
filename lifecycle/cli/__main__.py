"""``python -m lifecycle.cli``: the ``lifecycle`` command line."""

from lifecycle.cli import main

if __name__ == "__main__":
    main()
