"""Benchmarks: ``python -m minipar.bench NAME [options]`` (``--help`` lists the names).

Each benchmark is a module here with a ``main(argv) -> int``; multi-rank ones are started
under ``mpiexec -n P``. Benchmarks measure and print tables; they assert nothing about time.
"""
