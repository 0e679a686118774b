"""Fetching an OpenAPI document from a URL an admin gives
(`POST /v1/apis/{id}/openapi/from-url`).

A person chooses the URL and accounts fetches it from inside the platform, so the fetch
obeys the one SSRF policy (`tollgate.kit.netpolicy`, under the same
`allow_private_upstreams` setting as upstream URLs): http or https only, no credentials
in the URL, the host resolved and every address checked, and the connection made to a
checked address. The request names the host in `Host` and in TLS SNI, so certificates
are still verified against the name, and nothing looks the name up a second time (no
DNS-rebinding window). Environment proxies are ignored (a proxy would resolve names
itself). Redirects are followed by hand, at most `MAX_REDIRECTS`, each target checked
like the first URL, never from https down to http. The answer is read as a stream and
abandoned past `max_bytes` (counted after decompression); the whole fetch, redirects
included, is bounded by `FETCH_TIMEOUT_S`.

Every failure is a problem+json: 422 `openapi-url-refused` (the URL or an address it
leads to is not allowed), 422 `openapi-unreachable` (no answer, a timeout, a status
other than 200, too many redirects), 413 `too-large`. This module never parses the
document (`openapi_import` does) and never touches the database.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urljoin

import httpx

from tollgate.kit.netpolicy import DestinationRefused, IpAddress, NetworkPolicy, resolve_checked
from tollgate.kit.problems import ContentTooLarge, Problem, Unprocessable

MAX_REDIRECTS = 3
FETCH_TIMEOUT_S = 10.0
MAX_URL_LENGTH = 2048
_ACCEPT = "application/json, application/yaml, application/x-yaml, text/yaml;q=0.9, */*;q=0.1"


def _refused(reason: str) -> Problem:
    return Unprocessable("openapi-url-refused", f"Document URL refused: {reason}.")


def _unreachable(reason: str) -> Problem:
    return Unprocessable("openapi-unreachable", f"The document could not be fetched: {reason}.")


def checked_url(url: str) -> httpx.URL:
    """`url` parsed, when its shape is one accounts may fetch (no DNS yet)."""
    if len(url) > MAX_URL_LENGTH:
        raise _refused(f"longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError) as exc:
        raise _refused("malformed URL") from exc
    if parsed.scheme not in ("http", "https"):
        raise _refused("only http and https URLs can be fetched")
    if parsed.userinfo:
        raise _refused("no credentials in the URL")
    if not parsed.host:
        raise _refused("the URL has no host")
    return parsed.copy_with(fragment=None)


async def _checked_addresses(url: httpx.URL, policy: NetworkPolicy) -> list[IpAddress]:
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        return await resolve_checked(url.host, port, policy)
    except DestinationRefused as exc:
        if "does not resolve" in str(exc):
            raise _unreachable(f"{url.host} does not resolve") from exc
        raise _refused(str(exc)) from exc


async def _get_pinned(
    client: httpx.AsyncClient, url: httpx.URL, address: IpAddress, max_bytes: int
) -> bytes | httpx.URL:
    """GET `url` from `address`: the body, or the URL a redirect points at."""
    host_header = url.netloc.decode("ascii")
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    pinned = url.copy_with(host=str(address))
    headers = {"host": host_header, "accept": _ACCEPT}
    async with client.stream("GET", pinned, headers=headers, extensions=extensions) as answer:
        if answer.is_redirect:
            location = answer.headers.get("location", "")
            if not location:
                raise _unreachable(f"a {answer.status_code} redirect without a Location")
            return checked_url(urljoin(str(url), location))
        if answer.status_code != 200:
            raise _unreachable(f"{url.host} answered {answer.status_code}")
        declared = answer.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(max_bytes)
        body = bytearray()
        async for chunk in answer.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise _too_large(max_bytes)
        return bytes(body)


async def _get_from_any(
    client: httpx.AsyncClient, url: httpx.URL, addresses: list[IpAddress], max_bytes: int
) -> bytes | httpx.URL:
    """`_get_pinned` from the first of the checked addresses that takes the connection
    (a name may resolve to IPv6 and IPv4 while the server listens on one of them)."""
    for address in addresses[:-1]:
        try:
            return await _get_pinned(client, url, address, max_bytes)
        except httpx.ConnectError:
            continue
    return await _get_pinned(client, url, addresses[-1], max_bytes)


def _too_large(max_bytes: int) -> Problem:
    return ContentTooLarge("too-large", f"The document is larger than {max_bytes} bytes.")


async def fetch_document(
    url: str,
    *,
    policy: NetworkPolicy,
    max_bytes: int,
    timeout_s: float = FETCH_TIMEOUT_S,
    transport: httpx.AsyncBaseTransport | None = None,
) -> bytes:
    """The bytes at `url` (at most `max_bytes`), fetched under `policy`; a problem
    (422 `openapi-url-refused` / `openapi-unreachable`, 413 `too-large`) otherwise."""
    target = checked_url(url)
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(
                transport=transport, trust_env=False, follow_redirects=False, timeout=timeout_s
            ) as client,
        ):
            for _ in range(MAX_REDIRECTS + 1):
                addresses = await _checked_addresses(target, policy)
                got = await _get_from_any(client, target, addresses, max_bytes)
                if isinstance(got, bytes):
                    return got
                if target.scheme == "https" and got.scheme == "http":
                    raise _refused("a redirect from https to http")
                target = got
    except TimeoutError as exc:
        raise _unreachable(f"no complete answer within {timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise _unreachable(f"{target.host}: {type(exc).__name__}") from exc
    raise _unreachable(f"more than {MAX_REDIRECTS} redirects")
