"""Run by test_gateways.py in a child process: build `litellm.Router` from an exported config and
send chat and embedding calls through it; print {"chat": [...], "embed": [...], "blocked": [...]}.
Each chat call lists the loopback ports it connected to ("connects"): a try at a server that
refuses is one connect there (a live server's pooled connection may serve a call without one).

LiteLLM is imported here only (it takes seconds), with its model cost map read from the package
(LITELLM_LOCAL_MODEL_COST_MAP, set by the test) and every socket held to loopback (loopback_only.py):
a connection or name lookup elsewhere is refused and listed under "blocked", which the test asserts
is empty.

Usage: python litellm_router_probe.py CONFIG.yaml CHAT_MODEL EMBED_MODEL CHAT_CALLS EMBED_CALLS
"""

from __future__ import annotations

import json
import sys

from loopback_only import BLOCKED, CONNECTS  # importing it holds this process to loopback


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
