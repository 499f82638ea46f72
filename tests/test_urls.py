"""URL normalisation (OLLAMA_HOST rules from ollama-api.md) and the ids derived from URLs."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ollamactl.core.errors import UsageError
from ollamactl.core.urls import derive_id, normalise_url, validate_id

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
