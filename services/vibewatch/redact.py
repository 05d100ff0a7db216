"""Hiding credentials in URLs and in messages that may quote one.

One rule for every place a URL is shown (``vibewatch config show``, configuration
errors, the InfluxDB adapters' errors), so that a secret hidden in one place is
hidden in all of them:

* **User info.** ``http://user:pass@host`` is shown as ``http://user:********@host``.
  A user without a password is usually a token (``https://TOKEN@host``) and is
  masked whole. A password may hold a raw ``/`` or ``@``, so the user info runs to
  the *last* ``@`` before the query. A raw ``?`` or ``#`` in a password makes the
  rest look like a query: an ``@`` after it still ends the user info, unless it
  sits in a parameter value (``?u=me@example.com``) behind an authority that can
  be ``host[:port]``.
* **Query and fragment parameters** named in :data:`SECRET_PARAMS` keep their name
  and lose their value: ``?u=admin&p=hunter2`` becomes ``?u=admin&p=********``
  (InfluxDB 1.x reads its credentials from ``u`` and ``p``). Names are compared
  case-insensitively, percent-decoded and with ``-`` and ``_`` ignored, so
  ``API-Key``, ``api_key`` and ``apikey`` are one name. ``u`` (a user name) is
  shown, as the user of the user info is.

Where a malformed URL is ambiguous, masking hides more rather than less. The one
shape it cannot tell from a plain URL is a password that starts with digits and
then holds ``?name=`` (``http://u:12?a=b@host``): no parser can either.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Final

__all__ = ["MASK", "SECRET_PARAMS", "mask_url", "mask_urls_in"]

MASK: Final = "********"
"""What a hidden value is shown as."""

SECRET_PARAMS: Final = frozenset(
    {
        "p",
        "pass",
        "passwd",
        "password",
        "pwd",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth",
        "authorization",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "key",
        "signature",
        "sig",
    }
)
"""Names of query and fragment parameters whose values are secrets (compared normalised)."""


def _normal(name: str) -> str:
    decoded = urllib.parse.unquote_plus(name)
    return decoded.lower().replace("-", "").replace("_", "")


_SECRET_NAMES: Final = frozenset(_normal(name) for name in SECRET_PARAMS)

# A parameter starts after "?", "&", ";" or "#". In a URL its value runs to the next
# separator; in free text also to white space or a quote, which end the URL there.
_PARAM_IN_URL: Final = re.compile(r"(?P<head>[?&;#](?P<name>[^=&;#?]*)=)(?P<value>[^&;#]*)")
_PARAM_IN_TEXT: Final = re.compile(
    r"(?P<head>[?&;#](?P<name>[^=&;#?\s'\"<>]*)=)(?P<value>[^&;#\s'\"<>]*)"
)
# A URL inside a message: a scheme, "://", then everything up to white space or a quote.
_URL_IN_TEXT: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")
_PORT: Final = re.compile(r"[0-9]+", re.ASCII)


def _mask_params(text: str, pattern: re.Pattern[str]) -> str:
    def hide(match: re.Match[str]) -> str:
        if _normal(match["name"]) in _SECRET_NAMES and match["value"]:
            return match["head"] + MASK
        return match[0]

    return pattern.sub(hide, text)


def _userinfo_end(rest: str) -> int:
    """Index of the ``@`` that ends the user info of ``rest`` (after ``://``), or -1."""
    query = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, query)
    if at >= 0 or query == len(rest):
        return at
    # No "@" before the query, but one after it: either a query value holding an "@"
    # (an e-mail address) or a password holding a raw "?" or "#". A query value
    # follows a "name="; and a password leaves an authority that cannot be host[:port].
    after = rest.find("@", query)
    if after < 0:
        return -1
    slash = rest.find("/", 0, query)
    authority = rest[: slash if slash >= 0 else query]
    _, colon, port = authority.rpartition(":")
    not_host = colon and not authority.endswith("]") and _PORT.fullmatch(port) is None
    if "=" not in rest[query:after] or not_host:
        return after
    return -1


def mask_url(url: str) -> str:
    """Return ``url`` with its credentials replaced by :data:`MASK`.

    Args:
        url: Any text meant as a URL, well formed or not.

    Returns:
        The URL with the password of its user info (or a user that comes without a
        password) and the values of secret query and fragment parameters masked;
        everything else unchanged.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _mask_params(url, _PARAM_IN_URL)
    at = _userinfo_end(rest)
    if at < 0:
        return f"{scheme}{sep}{_mask_params(rest, _PARAM_IN_URL)}"
    user, colon, _ = rest[:at].partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    return f"{scheme}{sep}{shown}@{_mask_params(rest[at + 1 :], _PARAM_IN_URL)}"


def mask_urls_in(text: str) -> str:
    """Return a message with every URL in it masked by :func:`mask_url`.

    For messages of foreign exceptions, which may quote the URL they were given,
    or a path with its query. A URL is taken to end at white space or a quote.

    Args:
        text: A message.

    Returns:
        The message with the credentials of its URLs, and secret parameters of any
        query in it, masked.
    """
    masked = _URL_IN_TEXT.sub(lambda match: mask_url(match[0]), text)
    return _mask_params(masked, _PARAM_IN_TEXT)
