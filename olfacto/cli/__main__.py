"""``python -m olfacto.cli …``: the ``olfacto`` command without its entry-point script."""

from .main import console

console()
