"""The command line: ``olfacto run | sweep | experiment | fit | figures | bench`` (:mod:`.main`)."""

from .main import build_parser, console, main  # noqa: F401
