"""Fetching http(s) image URLs for the proxy, only when allowed, and never from private addresses.

A proxy that fetches any URL a client names is a server-side request forgery hole: a client could make it
read internal services. So remote images are off unless `--allow-remote-images`, and then every address the
host name resolves to must be public (no loopback, private, link-local, reserved or multicast targets),
the response must be an image under the size cap, and the whole fetch has a timeout. Redirects are not
followed (a public URL could redirect to a private one). The connection goes to the address that was
checked, with the original host name in `Host` and in TLS (SNI and certificate check): resolving the name
again to connect would let a DNS server answer a public address to the check and a private one to the
fetch (DNS rebinding).
"""

from __future__ import annotations

import base64
import ipaddress
import socket
from typing import Any
from urllib.parse import urlparse

__all__ = ["RemoteImageError", "check_public_host", "fetch_as_data_url", "inline_remote_images"]


class RemoteImageError(ValueError):
    """A remote image URL that may not or could not be fetched (the client gets HTTP 400)."""


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a public unicast address (not loopback, private, link-local, reserved, multicast, unspecified)."""
    return not (address.is_private or address.is_loopback or address.is_link_local or address.is_reserved
                or address.is_multicast or address.is_unspecified)


def check_public_host(host: str, resolve=socket.getaddrinfo, allowed=is_public) -> str:
    """The address to connect to for `host`: `RemoteImageError` unless every address it resolves to is
    `allowed` (public unicast by default)."""
    if not host:
        raise RemoteImageError("image URL has no host")
    try:
        infos = resolve(host, None)
    except OSError as exc:
        raise RemoteImageError(f"cannot resolve image host {host!r}: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise RemoteImageError(f"image host {host!r} resolves to no address")
    for address in addresses:
        if not allowed(address):
            raise RemoteImageError(f"image host {host!r} resolves to a non-public address ({address}); refused")
    return str(addresses[0])


def fetch_as_data_url(url: str, max_bytes: int, timeout: float, resolve=socket.getaddrinfo, allowed=is_public) -> str:
    """Download an http(s) image (public hosts only, size-capped, no redirects) as a base64 data URL."""
    import httpx

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise RemoteImageError(f"unsupported image URL scheme {parsed.scheme!r}")
    host = parsed.hostname or ""
    address = check_public_host(host, resolve, allowed)
    # Connect to the checked address; the name goes in Host and, for https, in SNI and the certificate check.
    pinned = httpx.URL(url).copy_with(host=address)
    headers = {"Host": parsed.netloc.rpartition("@")[2]}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client, client.stream(
                "GET", pinned, headers=headers, extensions={"sni_hostname": host}) as response:
            if response.status_code != 200:
                raise RemoteImageError(f"fetching {url[:80]!r} gave HTTP {response.status_code}")
            kind = response.headers.get("content-type", "").split(";")[0].strip()
            if not kind.startswith("image/"):
                raise RemoteImageError(f"{url[:80]!r} is not an image (content-type {kind or 'missing'})")
            data = bytearray()
            for chunk in response.iter_bytes():
                data.extend(chunk)
                if len(data) > max_bytes:
                    raise RemoteImageError(f"{url[:80]!r} is larger than the {max_bytes:,}-byte image cap")
    except httpx.HTTPError as exc:
        raise RemoteImageError(f"fetching {url[:80]!r} failed: {exc}") from None
    return f"data:{kind};base64,{base64.b64encode(bytes(data)).decode('ascii')}"


def inline_remote_images(messages: list[dict[str, Any]], allow: bool, max_bytes: int, timeout: float) -> int:
    """Replace http(s) `image_url`s in `messages` (in place) by data URLs; returns how many were fetched.

    With `allow=False` any remote URL raises `RemoteImageError` saying how to enable them.
    """
    fetched = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            spec = part.get("image_url")
            url = spec if isinstance(spec, str) else (spec or {}).get("url", "")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                continue
            if not allow:
                raise RemoteImageError("remote image URLs are disabled on this proxy: send base64 data URLs, or "
                                       "start it with --allow-remote-images")
            data_url = fetch_as_data_url(url, max_bytes, timeout)
            if isinstance(spec, str):
                part["image_url"] = data_url
            else:
                spec["url"] = data_url
            fetched += 1
    return fetched
