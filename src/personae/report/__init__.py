"""The HTML report of a ``personae eval`` run.

Imported lazily (it pulls in jinja2 templates and, for the plots, matplotlib), so importing
``personae`` stays fast.
"""

from __future__ import annotations

from personae.report.html import render_html, write_report
from personae.report.simulate import write_simulate_report

__all__ = ["render_html", "write_report", "write_simulate_report"]
