"""`python -m lrfind_cli`: the same as the `lrfind` command."""

from .cli import main

if __name__ == "__main__":
    main()
