"""Period reports: calls per queue and per agent, and ticket figures, over dates in the
configured time zone, as CSV, JSON or a self-contained HTML page with SVG charts.

- :mod:`hotline.reports.period`: what a report asks for (grouping, dates, format),
  checked, and its calendar periods;
- :mod:`hotline.reports.queries`: the rows read from PostgreSQL;
- :mod:`hotline.reports.aggregate`: the pure arithmetic from rows to figures
  (every definition from :mod:`hotline.domain.sla` and :mod:`hotline.store.rules`);
- :mod:`hotline.reports.render` (CSV, JSON), :mod:`hotline.reports.page` (HTML) and
  :mod:`hotline.reports.charts` (SVG);
- :mod:`hotline.reports.cli`: ``hotline report``; the API is :mod:`hotline.web.reports`.
"""
