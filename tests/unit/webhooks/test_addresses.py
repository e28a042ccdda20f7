"""The SSRF guard of webhook URLs (pure): which URLs and resolved addresses a webhook may be sent to."""

from __future__ import annotations

import ipaddress

import pytest

from billing.domain.webhooks.addresses import (
    MAX_URL_LENGTH,
    EndpointUrl,
    IPAddress,
    UnsafeUrl,
    address_problem,
    embedded_ipv4,
    parse_url,
    refused_addresses,
)

REFUSED = [
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::ffff:10.0.0.1", "private"),
    ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
    ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
    ("100.64.0.1", "not publicly routable"),  # carrier-grade NAT
    ("0.0.0.0", "unspecified"),  # noqa: S104 - an address refused, not one bound to
    ("224.0.0.1", "multicast"),
    ("fe80::1", "link-local"),
    ("169.254.1.1", "link-local"),
    ("fc00::1", "private"),
    ("ff02::1", "multicast"),
    ("::", "unspecified"),
    ("::ffff:127.0.0.1", "loopback"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "private"),  # Teredo of 192.0.2.45 (documentation)
    ("192.0.2.1", "private"),  # documentation
    ("255.255.255.255", "private"),
]
# Refused whether or not loopback is allowed: only loopback itself becomes acceptable.
NEVER_ACCEPTED = [address for address, kind in REFUSED if kind != "loopback"]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8"]
LOOPBACK = ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"]


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def endpoint(url: str = "https://hooks.example.com/billing", *, allow_loopback: bool = False) -> EndpointUrl:
    return parse_url(url, allow_loopback=allow_loopback)


def refusal(url: str, *, allow_loopback: bool = False) -> UnsafeUrl:
    with pytest.raises(UnsafeUrl) as refused:
        parse_url(url, allow_loopback=allow_loopback)
    assert refused.value.message
    assert str(refused.value) == refused.value.message
    return refused.value


# --- addresses ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_a_non_public_address_is_refused_saying_what_it_is(address: str, kind: str) -> None:
    problem = address_problem(ip(address), allow_loopback=False)
    assert problem is not None
    assert kind in problem
    assert str(ip(address)) in problem


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_a_non_public_address_literal_in_a_url_is_refused(address: str, kind: str) -> None:
    host = f"[{address}]" if ":" in address else address
    refused = refusal(f"https://{host}/hook")
    assert kind in refused.message
    assert refused.code == "webhook_url_refused"


@pytest.mark.parametrize("address", NEVER_ACCEPTED)
def test_allowing_loopback_allows_nothing_else(address: str) -> None:
    assert address_problem(ip(address), allow_loopback=True) is not None


def test_the_metadata_service_is_refused_even_where_loopback_is_allowed() -> None:
    problem = address_problem(ip("169.254.169.254"), allow_loopback=True)
    assert problem is not None
    assert "metadata" in problem


@pytest.mark.parametrize("address", PUBLIC)
def test_a_public_address_is_accepted(address: str) -> None:
    assert address_problem(ip(address), allow_loopback=False) is None
    assert address_problem(ip(address), allow_loopback=True) is None


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111"])
def test_a_public_address_literal_in_a_url_is_accepted(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    assert endpoint(f"https://{host}/hook").literal_address == ip(address)


@pytest.mark.parametrize("address", LOOPBACK)
def test_a_loopback_address_is_accepted_only_where_loopback_is_allowed(address: str) -> None:
    refused = address_problem(ip(address), allow_loopback=False)
    assert refused is not None
    assert "loopback" in refused
    assert address_problem(ip(address), allow_loopback=True) is None
    assert address_problem(ip(address), allow_loopback=True, scheme="http") is None


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111"])
def test_plain_http_to_a_public_address_is_refused_even_where_loopback_is_allowed(address: str) -> None:
    problem = address_problem(ip(address), allow_loopback=True, scheme="http")
    assert problem is not None
    assert "plain http" in problem


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::ffff:10.0.0.1", "10.0.0.1"),  # IPv4-mapped
        ("2002:a00:1::", "10.0.0.1"),  # 6to4
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 well-known prefix
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),  # Teredo client (stored inverted)
    ],
)
def test_an_ipv6_address_embedding_an_ipv4_one_leads_to_it(address: str, embedded: str) -> None:
    assert embedded_ipv4(ip(address)) == ip(embedded)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "::1", "fd00::1"])
def test_other_addresses_embed_none(address: str) -> None:
    assert embedded_ipv4(ip(address)) is None


# --- parse_url: accepted URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "host_header", "target"),
    [
        ("https://hooks.example.com", "hooks.example.com", 443, "hooks.example.com", "/"),
        ("https://hooks.example.com/billing", "hooks.example.com", 443, "hooks.example.com", "/billing"),
        ("https://hooks.example.com:443/x", "hooks.example.com", 443, "hooks.example.com", "/x"),
        ("https://hooks.example.com:8443/x", "hooks.example.com", 8443, "hooks.example.com:8443", "/x"),
        ("https://Hooks.Example.COM./x", "hooks.example.com", 443, "hooks.example.com", "/x"),
        ("HTTPS://hooks.example.com/x", "hooks.example.com", 443, "hooks.example.com", "/x"),
        (
            "https://hooks.example.com/in?tenant=t1&kind=billing",
            "hooks.example.com",
            443,
            "hooks.example.com",
            "/in?tenant=t1&kind=billing",
        ),
        ("https://hooks.example.com?a=1", "hooks.example.com", 443, "hooks.example.com", "/?a=1"),
        ("https://hooks.example.com/a%20b/", "hooks.example.com", 443, "hooks.example.com", "/a%20b/"),
        ("https://[2606:4700:4700::1111]/in", "2606:4700:4700::1111", 443, "[2606:4700:4700::1111]", "/in"),
        (
            "https://[2606:4700:4700::1111]:8443/in?x=1",
            "2606:4700:4700::1111",
            8443,
            "[2606:4700:4700::1111]:8443",
            "/in?x=1",
        ),
        ("https://8.8.8.8:9443/", "8.8.8.8", 9443, "8.8.8.8:9443", "/"),
    ],
)
def test_an_https_url_gives_where_to_connect_and_what_to_ask_for(
    url: str, host: str, port: int, host_header: str, target: str
) -> None:
    parsed = endpoint(url)
    assert (parsed.url, parsed.scheme, parsed.host, parsed.port) == (url, "https", host, port)
    assert parsed.host_header == host_header
    assert parsed.target == target


def test_a_host_name_has_no_literal_address() -> None:
    assert endpoint().literal_address is None


@pytest.mark.parametrize(
    ("url", "host_header", "target"),
    [
        ("http://localhost:8080/hook?x=1", "localhost:8080", "/hook?x=1"),
        ("http://localhost/hook", "localhost", "/hook"),
        ("http://127.0.0.1:3000/", "127.0.0.1:3000", "/"),
        ("http://[::1]:3000/in", "[::1]:3000", "/in"),
    ],
)
def test_plain_http_is_accepted_where_loopback_is_allowed(url: str, host_header: str, target: str) -> None:
    parsed = endpoint(url, allow_loopback=True)
    assert parsed.scheme == "http"
    assert (parsed.host_header, parsed.target) == (host_header, target)


@pytest.mark.parametrize("url", ["https://127.0.0.1:8443/", "https://[::1]/", "https://[::ffff:127.0.0.1]/"])
def test_a_loopback_literal_is_accepted_only_where_loopback_is_allowed(url: str) -> None:
    assert "loopback" in refusal(url).message
    assert endpoint(url, allow_loopback=True).literal_address is not None


@pytest.mark.parametrize("url", ["http://localhost/", "http://127.0.0.1/", "http://hooks.example.com/"])
def test_plain_http_is_refused_where_loopback_is_not_allowed(url: str) -> None:
    assert "https" in refusal(url).message


@pytest.mark.parametrize("url", ["http://8.8.8.8/", "http://[2606:4700:4700::1111]/", "http://10.0.0.1/"])
def test_plain_http_to_a_non_loopback_literal_is_refused_even_where_loopback_is_allowed(url: str) -> None:
    refusal(url, allow_loopback=True)


def test_plain_http_to_a_name_waits_for_its_resolution_to_be_judged() -> None:
    parsed = endpoint("http://hooks.example.com/", allow_loopback=True)
    assert refused_addresses(parsed, [ip("8.8.8.8")], allow_loopback=True) == [
        "resolves to 8.8.8.8: plain http is only allowed to loopback addresses"
    ]
    assert refused_addresses(parsed, [ip("127.0.0.1")], allow_loopback=True) == []


def test_a_url_of_exactly_the_maximum_length_is_accepted() -> None:
    base = "https://hooks.example.com/"
    url = base + "a" * (MAX_URL_LENGTH - len(base))
    assert len(endpoint(url).url) == MAX_URL_LENGTH


# --- parse_url: refused URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://hooks.example.com/", "https"),
        ("file:///etc/passwd", "https"),
        ("gopher://hooks.example.com/", "https"),
        ("hooks.example.com/in", "https"),
        ("//hooks.example.com/in", "https"),
        ("", "absolute https URL"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("https://./", "no host"),
        ("https://user:pass@hooks.example.com/", "credentials"),
        ("https://user@hooks.example.com/", "credentials"),
        ("https://@hooks.example.com/", "credentials"),
        ("https://hooks.example.com/in#frag", "fragment"),
        ("https://hooks.example.com/caf\u00e9", "printable ASCII"),
        ("https://h\u00f6oks.example.com/", "printable ASCII"),
        ("https://hooks.example.com/a b", "printable ASCII"),
        ("https://hooks.example.com/\tin", "printable ASCII"),
        ("https://hooks.example.com/in\r\nX-Injected: 1", "printable ASCII"),
        ("https://hooks.example.com/" + "a" * MAX_URL_LENGTH, f"longer than {MAX_URL_LENGTH}"),
        ("https://hooks.example.com:0/", "port 0"),
        ("https://hooks.example.com:65536/", "cannot be read"),
        ("https://hooks.example.com:http/", "cannot be read"),
        ("https://[::1/", "cannot be read"),
        ("https://2130706433/", "a number"),  # 127.0.0.1 as one decimal number
        ("https://0x7f.0.0.1/", "a number"),
        ("https://0x7f000001/", "a number"),
        ("https://0177.0.0.1/", "a number"),  # octal
        ("https://127.1/", "a number"),
        ("https://10.1/", "a number"),
    ],
)
def test_an_unusable_url_is_refused_with_a_message(url: str, words: str) -> None:
    assert words in refusal(url).message


@pytest.mark.parametrize(
    "url", ["http://2130706433/", "http://0x7f.0.0.1/", "http://0177.0.0.1/", "http://127.1/"]
)
def test_a_numeric_host_is_refused_even_where_loopback_and_http_are_allowed(url: str) -> None:
    assert "a number" in refusal(url, allow_loopback=True).message


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://hooks.example.com/", "invalid_webhook_url"),
        ("https://", "invalid_webhook_url"),
        ("https://hooks.example.com/in#frag", "invalid_webhook_url"),
        ("https://hooks.example.com:0/", "invalid_webhook_url"),
        ("https://hooks.example.com/" + "a" * MAX_URL_LENGTH, "invalid_webhook_url"),
        ("https://user:pass@hooks.example.com/", "webhook_url_refused"),
        ("https://10.0.0.1/", "webhook_url_refused"),
        ("https://2130706433/", "webhook_url_refused"),
    ],
)
def test_a_malformed_url_and_a_forbidden_one_have_different_error_codes(url: str, code: str) -> None:
    assert refusal(url).code == code


@pytest.mark.parametrize("url", [None, 42, b"https://hooks.example.com/"])
def test_a_url_that_is_not_a_string_is_refused(url: object) -> None:
    with pytest.raises(UnsafeUrl, match="absolute https URL"):
        parse_url(url, allow_loopback=False)  # type: ignore[arg-type]


def test_an_unsafe_url_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="https"):
        parse_url("ftp://hooks.example.com/", allow_loopback=False)


# --- refused_addresses -------------------------------------------------------------------------------------


def test_a_host_resolving_to_no_address_is_refused() -> None:
    assert refused_addresses(endpoint(), [], allow_loopback=False) == [
        "host hooks.example.com resolves to no address"
    ]


def test_a_host_resolving_only_to_public_addresses_is_accepted() -> None:
    addresses = [ip("8.8.8.8"), ip("2606:4700:4700::1111")]
    assert refused_addresses(endpoint(), addresses, allow_loopback=False) == []


def test_one_bad_address_among_good_ones_refuses_the_host() -> None:
    addresses = [ip("8.8.8.8"), ip("169.254.169.254"), ip("2606:4700:4700::1111")]
    problems = refused_addresses(endpoint(), addresses, allow_loopback=False)
    assert len(problems) == 1
    assert "169.254.169.254" in problems[0]
    assert "metadata" in problems[0]


def test_every_bad_address_is_reported() -> None:
    addresses = [ip("10.0.0.1"), ip("8.8.8.8"), ip("::1")]
    problems = refused_addresses(endpoint(), addresses, allow_loopback=False)
    assert len(problems) == 2
    assert "10.0.0.1" in problems[0]
    assert "::1" in problems[1]


def test_a_host_resolving_to_loopback_is_accepted_only_where_loopback_is_allowed() -> None:
    local = endpoint("http://localhost:8080/", allow_loopback=True)
    assert refused_addresses(local, [ip("127.0.0.1"), ip("::1")], allow_loopback=True) == []
    assert len(refused_addresses(endpoint(), [ip("127.0.0.1")], allow_loopback=False)) == 1


# --- the harder cases: reserved IPv6 ranges, local-use NAT64, hosts that are neither names nor addresses ---


@pytest.mark.parametrize(
    "address",
    ["::a9fe:a9fe", "::7f00:1", "::a00:1", "::ffff:0:a9fe:a9fe", "fec0::1", "5f00::1", "fd00:ec2::254%eth0"],
)
def test_a_reserved_ipv6_address_is_refused(address: str) -> None:
    assert address_problem(ip(address), allow_loopback=False) is not None


def test_a_nat64_local_use_address_whose_ipv4_position_is_unknown_is_refused() -> None:
    assert address_problem(ip("64:ff9b:1:a00:0:100:808:808"), allow_loopback=False) is not None


@pytest.mark.parametrize("url", ["https://%31%32%37.0.0.1/", "https://[v1.fe]/"])
def test_a_host_that_is_not_a_dns_name_or_ip_literal_is_refused(url: str) -> None:
    refusal(url)
