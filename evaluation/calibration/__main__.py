"""``python -m evaluation.calibration --out DIR``: write the calibration set as PNGs to look at."""

from evaluation.calibration import main

raise SystemExit(main())
