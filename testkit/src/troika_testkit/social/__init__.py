"""One loopback HTTP server standing for the X, Instagram, Facebook and LinkedIn APIs as their
documentation describes them, recording every request.

Each platform lives under its own prefix (``/x``, ``/instagram``, ``/facebook``, ``/linkedin``):
a client is pointed at ``platforms.base("x")`` where it would call ``https://api.twitter.com``,
at ``platforms.base("instagram")`` for ``https://graph.instagram.com``, at
``platforms.base("facebook")`` for ``https://graph.facebook.com`` and at
``platforms.base("linkedin")`` for ``https://api.linkedin.com``.

    with Platforms() as platforms:  # or the ``platforms`` fixture
        ada = platforms.add_x_user()
        httpx.post(f"{platforms.base('x')}/2/tweets", json={"text": "Hello"},
                   headers={"Authorization": f"Bearer {ada.access_token}"})
        assert platforms.posts[0].text == "Hello"
        assert platforms.requests_to("x")[0].json() == {"text": "Hello"}

What the server checks, as the platforms do: the access token comes in an
``Authorization: Bearer`` header and nowhere else, and is refused once it has expired or been
replaced; OAuth codes need the PKCE verifier and work once, refresh tokens rotate; images must
really be images (Instagram and Facebook fetch ``image_url``/``url`` themselves); an Instagram
container must be seen ``FINISHED`` before it is published; a LinkedIn post needs its version
headers, an author the token may post as, and images uploaded before. Each refusal has the
platform's own status and error body. ``fail_next`` and ``rate_limit_next`` make the next
matching request fail, once.
"""

from troika_testkit.social.linkedin import LINKEDIN_COMMENTARY_LIMIT as LINKEDIN_COMMENTARY_LIMIT
from troika_testkit.social.meta import FETCH_LIMIT as FETCH_LIMIT
from troika_testkit.social.meta import FETCH_TIMEOUT_S as FETCH_TIMEOUT_S
from troika_testkit.social.meta import INSTAGRAM_CAPTION_LIMIT as INSTAGRAM_CAPTION_LIMIT
from troika_testkit.social.meta import META_TOKEN_LIFETIME_S as META_TOKEN_LIFETIME_S
from troika_testkit.social.records import Account, Part, Post, Recorded
from troika_testkit.social.server import PLATFORMS, Platforms
from troika_testkit.social.world import LINKEDIN_REFRESH_LIFETIME_S as LINKEDIN_REFRESH_LIFETIME_S
from troika_testkit.social.world import LINKEDIN_SCOPE as LINKEDIN_SCOPE
from troika_testkit.social.world import LINKEDIN_TOKEN_LIFETIME_S as LINKEDIN_TOKEN_LIFETIME_S
from troika_testkit.social.world import OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET
from troika_testkit.social.world import X_SCOPE as X_SCOPE
from troika_testkit.social.x import X_MEDIA_LIMIT as X_MEDIA_LIMIT

__all__ = [
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "PLATFORMS",
    "Account",
    "Part",
    "Platforms",
    "Post",
    "Recorded",
]
