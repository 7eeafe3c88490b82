"""Where each social platform's API is, and the operator's OAuth clients for them.

Every address and API version is a setting, so a new version or a test server is one variable
away. Connecting an account through the platform's sign-in (OAuth 2 with PKCE) needs the
operator's client id for that platform; without one, people paste a token instead.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from troika_shared.settings import TroikaSettings

__all__ = ["SocialSettings"]


class SocialSettings(TroikaSettings):
    """The ``TROIKA_<PLATFORM>_*`` settings.

    Attributes:
        twitter_api_url: X's API (tweepy's requests and media upload go here).
        twitter_authorize_url: X's OAuth 2 authorization page.
        twitter_token_url: X's OAuth 2 token endpoint (code exchange and refresh).
        twitter_client_id: The operator's X app (OAuth 2 client id); empty: tokens are pasted.
        twitter_client_secret: For a confidential X app (sent with HTTP Basic).
        twitter_scopes: The scopes asked for (``offline.access`` brings a refresh token).
        instagram_api_url: The Instagram API with Instagram Login.
        instagram_api_version: Its Graph API version, e.g. ``v24.0``.
        facebook_api_url: The Graph API, for Pages.
        facebook_api_version: Its version.
        linkedin_api_url: LinkedIn's API (``/rest/posts``, ``/v2/userinfo``).
        linkedin_api_version: The ``LinkedIn-Version`` header, ``YYYYMM``.
        linkedin_authorize_url: LinkedIn's OAuth 2 authorization page.
        linkedin_token_url: LinkedIn's OAuth 2 token endpoint.
        linkedin_client_id: The operator's LinkedIn app; empty: tokens are pasted.
        linkedin_client_secret: That app's secret (LinkedIn sends it in the form).
        linkedin_scopes: The scopes asked for (``w_organization_social`` to post as a Page).
        public_url: The gateway's address as the internet reaches it, if it does: Instagram
            fetches images of the task's folder from short-lived signed links there.
        social_refresh_margin_s: A token that expires within this many seconds is refreshed
            before a post.
        social_renew_ahead_s: The worker renews a long-lived token (Instagram's, LinkedIn's)
            this long before it expires, whether or not anything is posted.
        social_renew_sweep_s: How often the worker looks for tokens to renew.
    """

    twitter_api_url: str = "https://api.twitter.com"
    twitter_authorize_url: str = "https://x.com/i/oauth2/authorize"
    twitter_token_url: str = "https://api.x.com/2/oauth2/token"  # noqa: S105 - an address
    twitter_client_id: str = ""
    twitter_client_secret: SecretStr | None = None
    twitter_scopes: str = "tweet.read tweet.write users.read media.write offline.access"
    instagram_api_url: str = "https://graph.instagram.com"
    instagram_api_version: str = "v24.0"
    facebook_api_url: str = "https://graph.facebook.com"
    facebook_api_version: str = "v24.0"
    linkedin_api_url: str = "https://api.linkedin.com"
    linkedin_api_version: str = "202511"
    linkedin_authorize_url: str = "https://www.linkedin.com/oauth/v2/authorization"
    linkedin_token_url: str = "https://www.linkedin.com/oauth/v2/accessToken"  # noqa: S105
    linkedin_client_id: str = ""
    linkedin_client_secret: SecretStr | None = None
    linkedin_scopes: str = "openid profile w_member_social"
    public_url: str = ""
    social_refresh_margin_s: int = Field(default=300, ge=0)
    social_renew_ahead_s: int = Field(default=7 * 86400, ge=0)
    social_renew_sweep_s: float = Field(default=3600.0, gt=0)
