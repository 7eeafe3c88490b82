"""Browser automation: one isolated Chromium context per task, reached only through the
outbound guard (see :mod:`.sessions`, :mod:`.egress` and :mod:`.actions`)."""

from troika_executor.browser.actions import BrowserCall
from troika_executor.browser.sessions import BrowserMissing, Browsers

__all__ = ["BrowserCall", "BrowserMissing", "Browsers"]
