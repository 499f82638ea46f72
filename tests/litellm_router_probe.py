"""Run by test_gateways.py in a child process: build `litellm.Router` from an exported config and
send chat and embedding calls through it; print {"chat": [...], "embed": [...], "blocked": [...]}.
Each chat call lists the loopback ports it connected to ("connects"): a try at a server that
refuses is one connect there (a live server's pooled connection may serve a call without one).

LiteLLM is imported here only (it takes seconds), with its model cost map read from the package
(LITELLM_LOCAL_MODEL_COST_MAP, set by the test) and every socket held to loopback: a connection
or name lookup elsewhere is refused and listed under "blocked", which the test asserts is empty.

Usage: python litellm_router_probe.py CONFIG.yaml CHAT_MODEL EMBED_MODEL CHAT_CALLS EMBED_CALLS
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys

BLOCKED: list[str] = []
CONNECTS: list[int] = []  # loopback ports connected to during the current call
_connect = socket.socket.connect
_getaddrinfo = socket.getaddrinfo


def _loopback(host: object) -> bool:
    if host in ("localhost", "127.0.0.1", "::1"):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if isinstance(address, tuple) and not _loopback(address[0]):
        BLOCKED.append(f"connect {address[0]}")
        raise OSError("the test allows loopback only")
    if isinstance(address, tuple):
        CONNECTS.append(address[1])
    return _connect(self, address)  # type: ignore[arg-type]


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
    if host is not None and not _loopback(host):
        BLOCKED.append(f"lookup {host}")
        raise socket.gaierror(socket.EAI_NONAME, "the test allows loopback only")
    return _getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


def main(config_path: str, chat_model: str, embed_model: str, chat_calls: int, embed_calls: int) -> dict:
    import yaml
    from litellm import Router

    config = yaml.safe_load(open(config_path, encoding="utf-8"))
    router = Router(model_list=config["model_list"], **config["router_settings"])
    chat, embed = [], []
    for n in range(chat_calls):
        CONNECTS.clear()
        try:
            reply = router.completion(model=chat_model, messages=[{"role": "user", "content": f"hello {n}"}])
            chat.append({"ok": True, "text": reply.choices[0].message.content, "connects": list(CONNECTS)})
        except Exception as exc:  # noqa: BLE001 - reported to the test, which judges it
            chat.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300], "connects": list(CONNECTS)})
    for n in range(embed_calls):
        try:
            reply = router.embedding(model=embed_model, input=[f"text {n}"])
            embed.append({"ok": True, "dimensions": len(reply.data[0]["embedding"])})
        except Exception as exc:  # noqa: BLE001
            embed.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]})
    return {"chat": chat, "embed": embed, "blocked": BLOCKED}


if __name__ == "__main__":
    path, chat_name, embed_name, chats, embeds = sys.argv[1:6]
    print(json.dumps(main(path, chat_name, embed_name, int(chats), int(embeds))))
