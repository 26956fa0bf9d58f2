import sys

try:
    from bench.run import main
except ModuleNotFoundError as exc:
    sys.exit(
        f"The benchmark needs the bench extra ({exc.name} is missing): "
        "run `make bench`, or `.venv/bin/pip install -e '.[bench]'` first"
    )

sys.exit(main())
