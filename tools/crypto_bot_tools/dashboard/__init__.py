"""``crypto-bot dashboard``: a local web app of a stack; ``crypto-bot local`` serves it under ``/dashboard``.

It reads the stack exactly as the ops commands do, through one :class:`~crypto_bot_tools.ops.sources.Source`
(a deployed stack with the user's own AWS credentials, or ``crypto-bot local`` over HTTP), so it adds no AWS
resource, no authentication and no cost beyond the reads.

* :mod:`~crypto_bot_tools.dashboard.app`: the routes, the checks against cross-site requests, the server;
* :mod:`~crypto_bot_tools.dashboard.pages`: the pages, server-rendered HTML, every value escaped;
* :mod:`~crypto_bot_tools.dashboard.svg`: the equity chart, an inline SVG;
* :mod:`~crypto_bot_tools.dashboard.equity`: equity over time from the cycle records;
* :mod:`~crypto_bot_tools.dashboard.reader`: the source's answers, kept a few seconds;
* ``static/``: one stylesheet and one script (polling a fragment, the confirmations), shipped in the package.

**Why no web framework, charting library or front-end build.** The pages are tables, a chart and three
buttons, read by one person on their own machine. Python's standard library has what that needs and is the
most mature and smallest dependency there is: ``http.server.ThreadingHTTPServer`` serves, ``html.escape``
escapes, and the chart is a few lines of SVG drawn on the server. A framework (Flask, FastAPI, Dash) or a
charting library (Plotly, Chart.js) would add packages to install and audit, a CDN or bundled assets, and for
the JavaScript ones a build step; none of it would draw anything these pages need. What the browser runs is
one small script without dependencies: it fetches the page's content every few seconds and puts it in place,
and asks for confirmation before a control is sent.
"""

from __future__ import annotations

from crypto_bot_tools.dashboard.cli import register

__all__ = ["register"]
