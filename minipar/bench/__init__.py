"""Benchmarks: ``python -m minipar.bench NAME [options]`` (``--help`` lists the names).

Each benchmark is a module here with a ``main(argv) -> int``; multi-rank ones are started
under ``mpiexec -n P``. Benchmarks measure and print tables; they assert nothing about time.
"""


def import_torch(bench: str):
    """PyTorch, or None after one line on stderr saying how to install it (the benchmarks
    that compare against it return 2 then)."""
    import sys
    try:
        import torch
    except ImportError:
        print(f"bench {bench}: PyTorch is not installed; pip install torch==2.13.0 "
              "(or 'minipar[bench]')", file=sys.stderr)
        return None
    return torch
