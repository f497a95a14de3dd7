"""Reports: a run's summary rendered as one self-contained ``report.html`` per run directory.

Imported lazily (it pulls in jinja2 templates and, for the plots, matplotlib), so importing
``personae`` stays fast.
"""

from __future__ import annotations

from personae.report.html import render_html, write_report
from personae.report.runs import KINDS, render_report, report_for, rewrite_report
from personae.report.simulate import write_simulate_report
from personae.report.survey import write_survey_report
from personae.report.sweep import write_sweep_report

__all__ = ["KINDS", "render_html", "render_report", "report_for", "rewrite_report", "write_report",
           "write_simulate_report", "write_survey_report", "write_sweep_report"]
