"""Classification with an OptNet layer (OptNet paper, appendix) on scikit-learn's digits:
``data`` (the split), ``models`` (FC or OptNet head), ``train`` and ``cli``
(``optnet classify``)."""
