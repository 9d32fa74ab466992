"""``python -m pgwire_pubsub``: the ``pgwire-pubsub`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
