"""Development harness, not part of the service: runs the real service (and, with
``triton_local``, a real Triton) as local processes for the tests, ``make eval`` and ``make bench``."""
