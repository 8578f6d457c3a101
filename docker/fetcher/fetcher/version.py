# Kept out of __init__.py: when a test run puts tests/ on sys.path, tests/fetcher/ can shadow
# this package as a namespace package, whose submodules still import but whose __init__ never
# runs, so nothing may depend on attributes defined in __init__.py.
__version__ = "0.1.0"
