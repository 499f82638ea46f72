"""URL normalisation (OLLAMA_HOST rules from ollama-api.md) and the ids derived from URLs."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ollamactl.core.errors import UsageError
from ollamactl.core.registry.urls import derive_id, normalise_url, respelled_host, validate_id

# The autouse isolation fixture is function-scoped; these properties do not touch the environment.
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("gpu1", "http://gpu1:11434"),
        ("gpu1:8080", "http://gpu1:8080"),
        ("http://gpu1:11434", "http://gpu1:11434"),
        ("http://gpu1", "http://gpu1:80"),
        ("https://gpu1", "https://gpu1:443"),
        ("https://ollama.example.com/prefix", "https://ollama.example.com:443/prefix"),
        ("https://host/a/b/", "https://host:443/a/b"),
        ("gpu1/ollama", "http://gpu1:11434/ollama"),
        ("HTTPS://GPU1.Example.COM.:8443", "https://gpu1.example.com:8443"),
        ("[::1]:11434", "http://[::1]:11434"),
        ("[::1]", "http://[::1]:11434"),
        ("https://[2001:DB8::0001]", "https://[2001:db8::1]:443"),
        ("[::]:11434", "http://[::1]:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:11434", "http://127.0.0.1:11434"),
        ("http://0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("192.168.1.20", "http://192.168.1.20:11434"),
        ("gpu1:08080", "http://gpu1:8080"),
        ("  gpu1\n", "http://gpu1:11434"),
    ],
)
def test_ollama_host_forms(given, expected):
    assert normalise_url(given) == expected


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("ftp://x", "ftp"),
        ("", "empty"),
        ("   ", "empty"),
        ("http://:11434", "http://:11434"),
        (":11434", ":11434"),
        ("gpu1:abc", "'abc'"),
        ("gpu1:0", "0"),
        ("gpu1:65536", "65536"),
        ("gpu1:١٢٣", "١٢٣"),  # Arabic-Indic digits are digits to str.isdigit, not to a socket
        ("::1", "brackets"),
        ("[::1", "[::1"),
        ("[zz::1]:80", "zz::1"),
        ("[::1]x", "'x'"),
        ("gpu_1!", "gpu_1!"),
        ("gpu 1", "gpu 1"),
        ("http://gpu1/a?b=1", "query"),
        ("http://gpu1/#x", "fragment"),
        ("http://gpu1/../etc", "/../etc"),
    ],
)
def test_bad_urls_raise_usage_error_naming_the_value(given, named):
    with pytest.raises(UsageError) as error:
        normalise_url(given)
    assert named in str(error.value)


@pytest.mark.parametrize("spelling", ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7F.0.0.1",
                                      "[::ffff:127.0.0.1]", "[::FFFF:7f00:1]", "127.0.0.1.", "0177.0.0.01"])
def test_every_spelling_of_an_ipv4_address_is_its_dotted_quad(spelling):
    """What getaddrinfo (inet_aton) connects to for these spellings is 127.0.0.1: stored so."""
    assert normalise_url(f"http://{spelling}:8080") == "http://127.0.0.1:8080"


@pytest.mark.parametrize(("given", "named"), [("256.1.1.1", "'256.1.1.1'"), ("1.2.3.4.5", "'1.2.3.4.5'"),
                                              ("08.1.1.1", "'08' is octal"), ("4294967296", "'4294967296'")])
def test_a_number_that_is_no_ipv4_address_is_refused_not_looked_up_as_a_name(given, named):
    with pytest.raises(UsageError) as error:
        normalise_url(given)
    assert "invalid IPv4 address" in str(error.value) and named in str(error.value)


NUMERIC_HOST = st.lists(st.one_of(st.integers(0, 2**32).map(str), st.integers(0, 2**32).map(hex),
                                  st.integers(0, 2**32).map(lambda n: "0" + format(n, "o")),
                                  st.sampled_from(["0", "00", "08", "0x", "255", "256"])),
                        min_size=1, max_size=5).map(".".join)


@PROPERTY
@given(NUMERIC_HOST)
@example("0x")
@example("1.0x")
def test_numeric_hosts_are_read_as_the_system_resolver_reads_them(host):
    import socket

    try:
        expected = socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        expected = None
    try:
        stored = normalise_url(host).partition("://")[2].rpartition(":")[0]
    except UsageError:
        stored = None
    if expected is None:
        assert stored in (None, host)  # refused, or (not a number to the resolver either) a name
    else:
        assert stored == ("127.0.0.1" if expected == "0.0.0.0" else expected)


def test_respelled_host_names_only_real_changes():
    assert respelled_host("http://0x7f000001:8080/p") == ("0x7f000001", "127.0.0.1")
    assert respelled_host("[::ffff:10.0.0.1]") == ("[::ffff:10.0.0.1]", "10.0.0.1")
    for same in ("GPU1.example.", "127.0.0.1:80", "https://[2001:DB8::1]", "10.1.2.3"):
        assert respelled_host(same) is None


def test_credentials_are_masked_in_the_error():
    with pytest.raises(UsageError) as error:
        normalise_url("https://bob:pa55word@gpu1")
    assert "pa55word" not in str(error.value) and "bob" not in str(error.value)


@pytest.mark.parametrize("given", ["http://bob:pa#55word@gpu1", "http://bob:pa?55word@gpu1/x",
                                   "bob:pa 55word@gpu1:11434", "http://bob:p@55word@gpu1", "HTTPS://bob:pa55word@gpu1"])
def test_a_password_is_never_echoed_whatever_characters_it_holds(given):
    with pytest.raises(UsageError) as error:
        normalise_url(given)
    assert "carries credentials" in str(error.value)
    assert "55word" not in str(error.value) and "bob" not in str(error.value)


URLISH = st.lists(
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "gpu1", "GPU", "0.0.0.0", "127.0.0.1", "[", "]",
                     "::1", "::", ":", "11434", "80", "0", "99999", "/", "/prefix", ".", "..", "-", "_", "%20",
                     "?", "#", "@", " ", "\t", "é", "x"]),
    max_size=8,
).map("".join)


@PROPERTY
@given(st.one_of(st.text(), st.text(alphabet=string.printable), URLISH))
@example("[::ffff:1.2.3.4]:80")
@example("http://gpu1:11434/a//b/")
@example("\u212a")  # KELVIN SIGN lower-cases to an ASCII k
def test_normalise_is_total_and_idempotent(text):
    try:
        url = normalise_url(text)
    except UsageError:
        return  # the only way to refuse
    assert normalise_url(url) == url
    scheme, _, rest = url.partition("://")
    assert scheme in ("http", "https") and rest


@PROPERTY
@given(URLISH, st.sets(st.sampled_from(["gpu1-11434", "gpu1-11434-2", "x", "instance"])))
def test_derived_ids_are_valid_and_avoid_taken_ones(text, taken):
    try:
        url = normalise_url(text)
    except UsageError:
        return
    new_id = derive_id(url, taken)
    assert validate_id(new_id) == new_id
    assert new_id not in taken


def test_derive_id_examples():
    assert derive_id("http://gpu1:11434", set()) == "gpu1-11434"
    assert derive_id("https://host:443/prefix", set()) == "host-443-prefix"
    assert derive_id("http://[::1]:11434", set()) == "ipv6-1-11434"
    assert derive_id("http://gpu1:11434", {"gpu1-11434"}) == "gpu1-11434-2"
    assert derive_id("http://gpu1:11434", {"gpu1-11434", "gpu1-11434-2"}) == "gpu1-11434-3"
