"""The HTTP plumbing: one loopback server that records each request and hands it to its
platform's endpoint, and :class:`Platforms`, what the tests hold."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from troika_testkit.social import linkedin, meta, x
from troika_testkit.social.answers import Answer, Refused, json_answer, not_found
from troika_testkit.social.meta import META_TOKEN_LIFETIME_S
from troika_testkit.social.pieces import alnum, digits
from troika_testkit.social.records import Recorded
from troika_testkit.social.world import (
    LINKEDIN_TOKEN_LIFETIME_S,
    OAUTH_CLIENT_ID,
    OAUTH_CLIENT_SECRET,
    Canned,
    World,
)

if TYPE_CHECKING:
    from troika_testkit.social.records import Account, Post
    from troika_testkit.social.world import Route

__all__ = ["PLATFORMS", "Platforms"]

PLATFORMS = ("x", "instagram", "facebook", "linkedin")
"""The platforms the server stands for, each the first segment of its paths."""

_ROUTES: dict[str, list[Route]] = {
    "x": x.ROUTES,
    "instagram": meta.INSTAGRAM_ROUTES,
    "facebook": meta.FACEBOOK_ROUTES,
    "linkedin": linkedin.ROUTES,
}


# --- the server --------------------------------------------------------------------------------


def _dispatch(world: World, request: Recorded) -> Answer:
    """Records the request, then answers it: a canned answer, else the platform's own."""
    with world.lock:
        world.requests.append(request)
        canned = next(
            (
                c
                for c in world.canned
                if c.platform == request.platform and c.pattern.search(request.path)
            ),
            None,
        )
        if canned is not None:
            world.canned.remove(canned)
    if canned is not None:
        if canned.answer is not None:
            return canned.answer
        return world.rate_limited(request, canned.reset_in_s)
    try:
        if request.platform == "linkedin" and request.path.startswith("/rest/"):
            linkedin.check_headers(request)
        for method, pattern, handle in _ROUTES[request.platform]:
            match = pattern.fullmatch(request.path)
            if match is not None and method == request.method:
                return handle(world, request, match)
    except Refused as refused:
        return refused.answer
    return not_found(request.platform, request.path)


def _handler(world: World) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                data = bytearray()
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    data += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(data)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _serve(self) -> None:
            url = urlsplit(self.path)
            platform, _, rest = url.path.removeprefix("/").partition("/")
            body = self._body()
            if platform in PLATFORMS:
                headers: dict[str, str] = {}
                for name, value in self.headers.items():
                    key = name.lower()
                    headers[key] = f"{headers[key]}, {value}" if key in headers else value
                query = parse_qs(url.query, keep_blank_values=True)
                answer = _dispatch(
                    world, Recorded(platform, self.command, f"/{rest}", query, headers, body)
                )
            else:
                answer = json_answer(404, {"error": f"no platform here; try one of {PLATFORMS}"})
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

    return Handler


def _check_platform(platform: str) -> None:
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}: one of {', '.join(PLATFORMS)}")


class Platforms:
    """The four platforms on one loopback port; a context manager (entering starts it).

    Attributes:
        oauth_client_id: The OAuth client the X and LinkedIn token endpoints know.
        oauth_client_secret: Its secret.
        server: The HTTP server.
    """

    oauth_client_id = OAUTH_CLIENT_ID
    oauth_client_secret = OAUTH_CLIENT_SECRET

    def __init__(self) -> None:
        self._world = World()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self._world))
        self._world.url = self.url
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        """The server's port."""
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        """The server's address, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def base(self, platform: str) -> str:
        """Where a client of ``platform`` (x, instagram, facebook, linkedin) sends its calls.

        Raises:
            ValueError: For another platform.
        """
        _check_platform(platform)
        return f"{self.url}/{platform}"

    @property
    def requests(self) -> list[Recorded]:
        """Every request, in order."""
        with self._world.lock:
            return list(self._world.requests)

    def requests_to(self, platform: str) -> list[Recorded]:
        """The requests one platform received, in order."""
        _check_platform(platform)
        return [r for r in self.requests if r.platform == platform]

    @property
    def posts(self) -> list[Post]:
        """Every post the platforms accepted, in order."""
        with self._world.lock:
            return list(self._world.posts)

    @property
    def x_tweets(self) -> set[str]:
        """The tweet ids X knows (a reply must answer one): every posted tweet's, and those a
        test adds (``platforms.x_tweets.add("1234")``)."""
        return self._world.x_tweets

    # --- accounts ---------------------------------------------------------------------------

    def add_x_user(
        self,
        *,
        username: str = "ada_writes",
        name: str = "Ada",
        expires_in: int = 7200,
        access_token: str | None = None,
        refresh_token: str | None = None,
    ) -> Account:
        """An X user; its access token lasts ``expires_in`` seconds, and so do refreshed ones."""
        return self._world.add(
            "x",
            ident=digits(19),
            name=name,
            username=username,
            lifetime=expires_in,
            access_token=access_token,
            refresh_token=refresh_token,
        )

    def add_instagram_user(
        self, *, username: str = "ada.pictures", access_token: str | None = None
    ) -> Account:
        """An Instagram professional account (Instagram Login) with a 60-day token."""
        return self._world.add(
            "instagram",
            ident="178414" + digits(11),
            name=username,
            username=username,
            lifetime=META_TOKEN_LIFETIME_S,
            access_token=access_token,
        )

    def add_facebook_page(
        self, *, name: str = "Ada's Bakery", access_token: str | None = None
    ) -> Account:
        """A Facebook Page with a Page access token that does not expire."""
        return self._world.add(
            "facebook",
            ident=digits(15),
            name=name,
            username=None,
            lifetime=None,
            access_token=access_token,
        )

    def add_linkedin_member(
        self,
        *,
        name: str = "Ada Lovelace",
        organizations: tuple[str, ...] = ("1234567",),
        access_token: str | None = None,
        refresh_token: str | None = None,
    ) -> Account:
        """A LinkedIn member who may post as itself and as each of ``organizations``."""
        return self._world.add(
            "linkedin",
            ident=alnum(10),
            name=name,
            username=None,
            lifetime=LINKEDIN_TOKEN_LIFETIME_S,
            access_token=access_token,
            refresh_token=refresh_token,
            organizations=tuple(organizations),
        )

    def expire(self, account: Account) -> None:
        """Makes the account's access token expired: it is refused from now on (its refresh
        token still works)."""
        with self._world.lock:
            account.expires_at = time.time() - 1

    # --- canned failures --------------------------------------------------------------------

    def fail_next(
        self,
        platform: str,
        path: str,
        status: int,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next request to ``platform`` whose path (after the prefix) matches the regular
        expression ``path`` gets this answer instead, once.

        Args:
            platform: x, instagram, facebook or linkedin.
            path: A regular expression, searched in the path, e.g. ``r"^/2/tweets$"``.
            status: The HTTP status.
            body: A JSON body; ``None``: an empty body.
            headers: Headers to send with it.
        """
        _check_platform(platform)
        answer = json_answer(status, body, headers) if body is not None else Answer(status)
        if body is None:
            answer.headers.update(headers or {})
        with self._world.lock:
            self._world.canned.append(Canned(platform, re.compile(path), answer))

    def rate_limit_next(self, platform: str, path: str, *, reset_in_s: int = 90) -> None:
        """The next request to ``platform`` whose path matches ``path`` gets the platform's
        documented rate-limit answer, once: X a 429 with ``x-rate-limit-*`` headers, LinkedIn a
        429 with ``Retry-After``, Instagram and Facebook a 400 (code 4 or 32) with an
        ``X-Business-Use-Case-Usage`` header giving the minutes until access comes back."""
        _check_platform(platform)
        with self._world.lock:
            self._world.canned.append(Canned(platform, re.compile(path), None, reset_in_s))

    # --- starting and stopping --------------------------------------------------------------

    def __enter__(self) -> Platforms:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
